// Makes the libFuzzer addon that @jazzer.js/fuzzer ships (prebuilds/fuzzer-linux-x64.node) load on Debian 12
// (glibc 2.36, libstdc++ of GCC 12). The prebuilt is linked on a newer system and asks for three symbols that
// only exist there; the package has no C++ sources to rebuild from, and its build fetches LLVM from the network.
//   - __isoc23_strtol / __isoc23_strtoul @GLIBC_2.38: C23's strtol/strtoul, which differ from the classic ones
//     only in also parsing a "0b" prefix. The patch points the two symbols at strtol/strtoul @GLIBC_2.2.5 (the
//     name "strtol" is the tail of "__isoc23_strtol" in .dynstr, so no string is rewritten).
//   - std::ios_base_library_init() @GLIBCXX_3.4.32: GCC 13's <iostream> only names it to pull a versioned
//     dependency in (no relocation refers to it), so it is never resolved.
// The two version requirements that are then unused or unresolved are marked weak (VER_FLG_WEAK): a missing weak
// version is not an error for the dynamic linker. Nothing else in the file changes. Idempotent; a no-op where the
// addon already loads (a newer glibc) or on other platforms.

import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const SHT_DYNSYM = 11;
const SHT_GNU_VERNEED = 0x6ffffffe;
const SHT_GNU_VERSYM = 0x6fffffff;
const VER_FLG_WEAK = 0x2;

interface Section {
  type: number;
  offset: number;
  size: number;
  link: number;
}

function sections(elf: Buffer): Section[] {
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const out: Section[] = [];
  for (let i = 0; i < shnum; i++) {
    const h = shoff + i * shentsize;
    out.push({
      type: elf.readUInt32LE(h + 4),
      offset: Number(elf.readBigUInt64LE(h + 24)),
      size: Number(elf.readBigUInt64LE(h + 32)),
      link: elf.readUInt32LE(h + 40),
    });
  }
  return out;
}

function cstr(elf: Buffer, at: number): string {
  return elf.toString('latin1', at, elf.indexOf(0, at));
}

/** Rewrites the ELF image in place; returns whether anything changed. */
export function patchElf(elf: Buffer): boolean {
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) throw new Error('not a 64-bit LE ELF');
  const secs = sections(elf);
  const dynsym = secs.find((s) => s.type === SHT_DYNSYM);
  const versym = secs.find((s) => s.type === SHT_GNU_VERSYM);
  const verneed = secs.find((s) => s.type === SHT_GNU_VERNEED);
  if (!dynsym || !versym || !verneed) throw new Error('no dynamic symbol versioning sections');
  const dynstr = secs[dynsym.link].offset;

  // Version indexes by name (for libc's GLIBC_2.2.5 and the two versions to weaken).
  let changed = false;
  let classic = -1;
  const weaken = new Set(['GLIBC_2.38', 'GLIBCXX_3.4.32']);
  const weakened = new Map<string, number>();
  for (let vn = verneed.offset; ; ) {
    const cnt = elf.readUInt16LE(vn + 2);
    const file = cstr(elf, dynstr + elf.readUInt32LE(vn + 4));
    for (let i = 0, a = vn + elf.readUInt32LE(vn + 8); i < cnt; i++) {
      const name = cstr(elf, dynstr + elf.readUInt32LE(a + 8));
      const index = elf.readUInt16LE(a + 6) & 0x7fff;
      if (file === 'libc.so.6' && name === 'GLIBC_2.2.5') classic = index;
      if (weaken.has(name)) {
        weakened.set(name, index);
        const flags = elf.readUInt16LE(a + 4);
        if ((flags & VER_FLG_WEAK) === 0) {
          elf.writeUInt16LE(flags | VER_FLG_WEAK, a + 4);
          changed = true;
        }
      }
      a += elf.readUInt32LE(a + 12);
    }
    const next = elf.readUInt32LE(vn + 12);
    if (next === 0) break;
    vn += next;
  }
  if (classic < 0) throw new Error('no GLIBC_2.2.5 requirement to retarget to');

  const c23 = weakened.get('GLIBC_2.38');
  for (let i = 0; i < dynsym.size / 24; i++) {
    const sym = dynsym.offset + i * 24;
    const name = cstr(elf, dynstr + elf.readUInt32LE(sym));
    if ((name === '__isoc23_strtol' || name === '__isoc23_strtoul') && c23 !== undefined) {
      elf.writeUInt32LE(elf.readUInt32LE(sym) + '__isoc23_'.length, sym);
      elf.writeUInt16LE(classic, versym.offset + i * 2);
      changed = true;
    }
  }
  return changed;
}

/** Loads the addon once; if this glibc refuses it for the reasons above, patches the prebuilt and says so. */
export function ensureJazzerLoads(): void {
  if (process.platform !== 'linux' || process.arch !== 'x64') return;
  const require = createRequire(import.meta.url);
  const path = require.resolve('@jazzer.js/fuzzer/prebuilds/fuzzer-linux-x64.node');
  try {
    require(path);
    return;
  } catch (err) {
    if (!/GLIBC_2\.38|GLIBCXX_3\.4\.32/.test(String(err))) throw err;
  }
  const elf = readFileSync(path);
  if (patchElf(elf)) {
    writeFileSync(path, elf);
    console.error(`fuzz: patched ${path} for this glibc (see test/fuzz/glibc-compat.ts)`);
  }
}
