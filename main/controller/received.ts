// Received files as the window lists them: those waiting in the engine's inbox, and those already in the
// auto-save folder. The folder is watched with chokidar, so files the user moves or deletes leave the list.
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type FSWatcher, watch } from 'chokidar';
import type { ReceivedItem } from '../../preload/api.ts';
import type { ReceivedFile } from '../engine/protocol.ts';

/** Newest folder entries listed; an auto-save folder may well be ~/Downloads. */
const FOLDER_LIMIT = 200;

export class ReceivedFiles {
  #inbox: ReceivedFile[] = [];
  #folderItems: ReceivedItem[] = [];
  #folder = '';
  #watcher: FSWatcher | undefined;
  #rescanTimer: NodeJS.Timeout | undefined;
  /** Sender by file name, for files that arrived while we watched. */
  readonly #from = new Map<string, string>();

  constructor(private readonly changed: () => void) {}

  list(): ReceivedItem[] {
    const inbox: ReceivedItem[] = this.#inbox.map((f) => ({ ...f, where: 'inbox', from: this.#from.get(f.name) }));
    const folder = this.#folderItems.map((f) => ({ ...f, from: this.#from.get(f.name) }));
    return [...inbox, ...folder].sort((a, b) => b.modified - a.modified);
  }

  setInbox(files: ReceivedFile[]): void {
    this.#inbox = files;
    this.changed();
  }

  noteSender(name: string, from: string): void {
    this.#from.set(name, from);
    if (this.#from.size > 1000) this.#from.delete(this.#from.keys().next().value as string);
  }

  /** Watches dir ('' = none) and lists its files. */
  async watchFolder(dir: string): Promise<void> {
    if (dir === this.#folder) return;
    await this.#watcher?.close();
    this.#watcher = undefined;
    this.#folder = dir;
    this.#folderItems = [];
    if (dir) {
      // Watching needs the folder; the user chose it, so it may be created.
      await mkdir(dir, { recursive: true }).catch(() => {});
      const watcher = watch(dir, { depth: 0, ignoreInitial: true, persistent: true });
      watcher.on('all', () => this.#scheduleRescan());
      watcher.on('error', () => this.#scheduleRescan());
      this.#watcher = watcher;
      await this.#rescan();
    }
    this.changed();
  }

  async close(): Promise<void> {
    clearTimeout(this.#rescanTimer);
    await this.#watcher?.close();
    this.#watcher = undefined;
  }

  #scheduleRescan(): void {
    clearTimeout(this.#rescanTimer);
    this.#rescanTimer = setTimeout(() => void this.#rescan().then(this.changed), 200);
  }

  async #rescan(): Promise<void> {
    const dir = this.#folder;
    if (!dir) return;
    const names = await readdir(dir).catch(() => [] as string[]);
    const items: ReceivedItem[] = [];
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const st = await stat(join(dir, name)).catch(() => undefined);
      if (!st?.isFile()) continue;
      items.push({ name, size: st.size, modified: st.mtimeMs, where: 'folder', path: join(dir, name) });
    }
    items.sort((a, b) => b.modified - a.modified);
    if (dir === this.#folder) this.#folderItems = items.slice(0, FOLDER_LIMIT);
  }
}
