// Where Trellis's time goes: the top functions by self time of the V8 CPU profiles (`node --cpu-prof`) that the
// Trellis processes of a bench wrote into TRELLIS_CPU_PROF, one file per thread, named
// CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fix, mdTable, ROOT } from './common.ts';

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileTop {
  /** What the profiled processes did in the bench, e.g. 'Trellis a (sender)'. */
  label: string;
  files: number;
  /** Sampled ms that were not (idle). */
  busyMs: number;
  rows: { fn: string; where: string; selfMs: number }[];
}

/** The profile files in dir written by the process with this pid. */
export function profileFiles(dir: string, pid: number): string[] {
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {}
  return names
    .filter((n) => new RegExp(`^CPU\\.\\d+\\.\\d+\\.${pid}\\.\\d+\\.\\d+\\.cpuprofile$`).test(n))
    .map((n) => path.join(dir, n));
}

function where(url: string, line: number): string {
  if (!url) return '';
  let file = url;
  try {
    file = url.startsWith('file:') ? fileURLToPath(url) : url;
  } catch {}
  const rel = file.startsWith(ROOT) ? path.relative(ROOT, file) : file.replace(/^.*\/node_modules\//, '');
  // tsx compiles each TypeScript module onto other lines than its source's (no source map here): file only.
  return line >= 0 && !/\.[cm]?ts$/.test(rel) ? `${rel}:${line + 1}` : rel;
}

/**
 * Self time per function (name + file + line) over all given profiles, top n by self time, (idle) left out. With
 * windows (µs of CLOCK_MONOTONIC, the clock of V8's profile timestamps), only samples inside one of them count.
 */
export function topFunctions(label: string, files: string[], windows?: [number, number][], n = 12): ProfileTop {
  const self = new Map<string, { fn: string; where: string; selfMs: number }>();
  let busyMs = 0;
  for (const file of files) {
    const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    const byId = new Map(p.nodes.map((x) => [x.id, x.callFrame]));
    // timeDeltas[i] is the time before sample i, so sample i ran for timeDeltas[i + 1] (the last one: unknown).
    let t = p.startTime;
    for (let i = 0; i < p.samples.length; i++) {
      t += p.timeDeltas[i] ?? 0;
      const cf = byId.get(p.samples[i] ?? -1);
      const ms = (p.timeDeltas[i + 1] ?? 0) / 1000;
      if (!cf || cf.functionName === '(idle)' || ms <= 0) continue;
      if (windows && !windows.some(([from, to]) => t >= from && t <= to)) continue;
      busyMs += ms;
      const fn = cf.functionName || '(anonymous)';
      const w = where(cf.url, cf.lineNumber);
      const key = `${fn}\0${w}`;
      const e = self.get(key) ?? { fn, where: w, selfMs: 0 };
      e.selfMs += ms;
      self.set(key, e);
    }
  }
  const rows = [...self.values()].sort((x, y) => y.selfMs - x.selfMs).slice(0, n);
  return { label, files: files.length, busyMs, rows };
}

/** One Markdown table per profiled role: function, where, self ms and share of the busy time. */
export function profileMarkdown(tops: ProfileTop[]): string {
  return tops
    .map((t) => {
      const head = `**${t.label}**: ${t.files} profile file(s) (threads), ${fix(t.busyMs)} ms busy (sampled, not idle)`;
      if (t.files === 0) return `${head}: no profile found.`;
      const rows = t.rows.map((r) => [
        `\`${r.fn}\``,
        r.where ? `\`${r.where}\`` : '',
        fix(r.selfMs),
        `${fix((100 * r.selfMs) / t.busyMs, 1)} %`,
      ]);
      return `${head}\n\n${mdTable(['Function', 'Where', 'Self ms', 'Share of busy'], rows)}`;
    })
    .join('\n\n');
}
