// The OS side of using routes: policy routing for the exit node and accepted subnets, installed as the plan
// says and taken away on down, disconnect, clearing the exit node, and after a crash. What was installed is
// recorded in the state dir before it is installed, so a daemon killed meanwhile undoes it when it starts.
// Linux only for now; elsewhere choosing an exit node or accepting routes is reported as not supported.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bypassMarkWorks } from './bypass-socket.ts';
import {
  installConnmark,
  removeConnmark,
  removeLanSourceRules,
  srcValidMark,
  strictRpFilter,
  syncLanSourceRules,
} from './linux-connmark.ts';

/** The strict-rp_filter answer's OS parts (linux-connmark.ts), apart so a test can watch the decisions. */
export interface ConnmarkOps {
  strictRpFilter(tunName: string): Promise<boolean>;
  srcValidMark(): Promise<string>;
  install(): Promise<void>;
  remove(previousSrcValidMark: string): Promise<void>;
}

const LINUX_CONNMARK: ConnmarkOps = {
  strictRpFilter,
  srcValidMark,
  install: () => installConnmark(),
  remove: (previous) => removeConnmark(previous),
};

import { applyLinuxRoutes, type RoutePlan, type Runner, removeLinuxRoutes, runIp } from './linux-router.ts';

const RECORD = 'routes-installed.json';

/** What was installed, written before it is: enough to undo it after a crash. */
interface Installed {
  table: number;
  tun: string;
  /** Set when the connmark rules went in (strict rp_filter): the src_valid_mark to put back. */
  srcValidMark?: string;
}

export class RoutesUnsupportedError extends Error {
  override readonly name = 'RoutesUnsupportedError';
}

export class OsRoutes {
  private installed: Installed | undefined;
  /** One change at a time, in the order asked. */
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly stateDir: string,
    private readonly log: (message: string) => void,
    private readonly run: Runner = runIp,
    private readonly platform: NodeJS.Platform = process.platform,
    private readonly connmark: ConnmarkOps = LINUX_CONNMARK,
    private readonly markWorks: () => boolean = bypassMarkWorks,
  ) {}

  /** Routing left installed by a run that did not end cleanly is taken away. */
  recover(): Promise<void> {
    return this.serial(async () => {
      const left = await this.recorded();
      if (!left) return;
      this.log('routes: removing the exit-node/subnet routing a previous run left installed');
      await this.undo(left);
    });
  }

  /**
   * Installs (or changes, or removes when nothing is routed) the routing for the plan. Resolves true when the
   * connmark rules went in just now: flows opened before save their mark only with their next packet, so the
   * caller has the quiet ones (the map stream) send one.
   */
  apply(plan: RoutePlan): Promise<boolean> {
    let connmarkNow = false;
    return this.serial(async () => {
      const wanted = plan.exitNode || plan.subnets.length > 0;
      if (!wanted) return this.removeNow();
      if (this.platform !== 'linux') {
        throw new RoutesUnsupportedError(`exit nodes and subnet routes are not supported on ${this.platform} yet`);
      }
      if (!this.markWorks()) {
        throw new RoutesUnsupportedError(
          'exit nodes and subnet routes need the native addon and CAP_NET_ADMIN (to mark the engine’s own sockets)',
        );
      }
      if (!this.installed) await this.record({ table: 52, tun: plan.tunName });
      // Checked whenever an exit node is in the plan, not only at the first install: subnets accepted first and an
      // exit node chosen later need the rules too.
      const installed = this.installed as Installed;
      if (plan.exitNode && installed.srcValidMark === undefined && (await this.connmark.strictRpFilter(plan.tunName))) {
        await this.record({ ...installed, srcValidMark: await this.connmark.srcValidMark() });
        this.log('routes: strict rp_filter: keeping the bypass mark on replies (connmark, src_valid_mark=1)');
        await this.connmark.install();
        connmarkNow = true;
      }
      await applyLinuxRoutes(plan, this.run);
      // Under strict rp_filter with the default route in the tunnel, LAN neighbours must still get ARP answers.
      if (this.installed?.srcValidMark !== undefined && plan.exitNode) await syncLanSourceRules(this.run, plan.tunName);
      else await removeLanSourceRules(this.run);
    }).then(() => connmarkNow);
  }

  /** Writes what is about to be installed, before it is. */
  private async record(what: Installed): Promise<void> {
    await writeFile(join(this.stateDir, RECORD), `${JSON.stringify(what)}\n`, { mode: 0o600 });
    this.installed = what;
  }

  /** Takes everything away (down, disconnect, nothing routed any more). */
  remove(): Promise<void> {
    return this.serial(() => this.removeNow());
  }

  private async removeNow(): Promise<void> {
    const what = this.installed ?? (await this.recorded());
    if (!what) return;
    await this.undo(what);
    this.installed = undefined;
  }

  private async undo(what: Installed): Promise<void> {
    await removeLanSourceRules(this.run);
    await removeLinuxRoutes(this.run);
    if (what.srcValidMark !== undefined) await this.connmark.remove(what.srcValidMark);
    await rm(join(this.stateDir, RECORD), { force: true });
  }

  /** The record a run left (a damaged one still means something was installed: undo the routing). */
  private async recorded(): Promise<Installed | undefined> {
    if (this.platform !== 'linux') return undefined;
    let text: string;
    try {
      text = await readFile(join(this.stateDir, RECORD), 'utf8');
    } catch {
      return undefined;
    }
    try {
      const r = JSON.parse(text) as Partial<Installed>;
      const mark = typeof r.srcValidMark === 'string' ? { srcValidMark: r.srcValidMark } : {};
      return { table: 52, tun: typeof r.tun === 'string' ? r.tun : '', ...mark };
    } catch {
      return { table: 52, tun: '' };
    }
  }

  private serial(f: () => Promise<void>): Promise<void> {
    const next = this.queue.then(f, f);
    this.queue = next.catch(() => {});
    return next;
  }
}
