// Shapes of the control server's node, user and DERP entries, enforced where they enter the netmap: every field the
// engine puts in a path, a name, a call or a comparison has the type it is read as afterwards. A field of the wrong
// shape is dropped (treated as absent) or filtered to its good entries; each fix is counted, nothing throws.
import type { DERPNode, DERPRegion, Hostinfo, TailNode, UserProfile } from './tailcfg.ts';

/** A StableID goes into file names (Taildrop partials): letters, digits, '_' and '-' only, bounded. */
export const STABLE_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** What a malformed Tags becomes: the node counts as tagged, so it gets no user's rights (fail closed). */
export const INVALID_TAG = 'tag:invalid';

type Obj = Record<string, unknown>;

const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === 'string';
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isPort = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 65535;
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** Counts the fixes made to one entry. */
class Fixer {
  fixes = 0;

  /** Deletes o[k] unless it is absent or passes ok (null passes only with nullOk). */
  field(o: Obj, k: string, ok: (v: unknown) => boolean, nullOk = false): void {
    const v = o[k];
    if (v === undefined || (v === null && nullOk) || ok(v)) return;
    delete o[k];
    this.fixes++;
  }

  /** Keeps only the good entries of an array field; a non-array is deleted (null kept with nullOk). */
  list(o: Obj, k: string, ok: (v: unknown) => boolean, nullOk = false): void {
    const v = o[k];
    if (v === undefined || (v === null && nullOk)) return;
    if (!Array.isArray(v)) {
      delete o[k];
      this.fixes++;
      return;
    }
    if (v.every(ok)) return;
    o[k] = v.filter(ok);
    this.fixes++;
  }
}

/** Fixes a netmap node (self or peer) in place; the number of fields dropped or filtered. */
export function sanitizeNode(n: TailNode): number {
  const f = new Fixer();
  const o = n as Obj;
  f.field(o, 'StableID', (v) => isString(v) && STABLE_ID.test(v));
  for (const k of ['Name', 'Key', 'DiscoKey', 'Machine', 'DERP', 'KeyExpiry']) f.field(o, k, isString);
  f.field(o, 'LastSeen', isString, true);
  f.field(o, 'Online', isBool, true);
  for (const k of ['Expired', 'MachineAuthorized']) f.field(o, k, isBool);
  for (const k of ['User', 'HomeDERP', 'Cap']) f.field(o, k, isCount);
  f.list(o, 'Addresses', isString, true);
  f.list(o, 'AllowedIPs', isString, true);
  f.list(o, 'Endpoints', isString, true);
  f.list(o, 'PrimaryRoutes', isString, true);
  f.list(o, 'Capabilities', isString, true);
  if (o.Tags != null && (!Array.isArray(o.Tags) || !o.Tags.every(isString))) {
    o.Tags = [...(Array.isArray(o.Tags) ? o.Tags.filter(isString) : []), INVALID_TAG];
    f.fixes++;
  }
  f.field(o, 'CapMap', isObject, true);
  if (isObject(o.CapMap)) {
    for (const [k, v] of Object.entries(o.CapMap)) {
      if (v === null || Array.isArray(v)) continue;
      delete o.CapMap[k];
      f.fixes++;
    }
  }
  f.field(o, 'Hostinfo', isObject);
  if (isObject(o.Hostinfo)) f.fixes += sanitizeHostinfo(o.Hostinfo as Hostinfo);
  return f.fixes;
}

function sanitizeHostinfo(h: Hostinfo): number {
  const f = new Fixer();
  const o = h as Obj;
  for (const k of ['IPNVersion', 'OS', 'OSVersion', 'Hostname', 'App', 'FrontendLogID', 'BackendLogID']) {
    f.field(o, k, isString);
  }
  f.list(o, 'Services', (s) => isObject(s) && isString(s.Proto) && isPort(s.Port));
  f.list(o, 'RoutableIPs', isString, true);
  f.field(o, 'NetInfo', isObject);
  return f.fixes;
}

/** Fixes a user profile in place (its names are shown and searched); the number of fields dropped. */
export function sanitizeUser(u: UserProfile): number {
  const f = new Fixer();
  for (const k of ['LoginName', 'DisplayName', 'ProfilePicURL']) f.field(u as unknown as Obj, k, isString);
  return f.fixes;
}

/** Fixes a DERP region in place: its nodes' names, addresses and ports are dialled; the number of fixes. */
export function sanitizeRegion(r: DERPRegion): number {
  const f = new Fixer();
  const o = r as unknown as Obj;
  for (const k of ['RegionCode', 'RegionName']) f.field(o, k, isString);
  f.field(o, 'Avoid', isBool);
  f.list(o, 'Nodes', (n) => isObject(n) && isString(n.HostName));
  for (const n of (o.Nodes ?? []) as DERPNode[]) {
    const no = n as unknown as Obj;
    for (const k of ['Name', 'CertName', 'IPv4', 'IPv6']) f.field(no, k, isString);
    f.field(no, 'RegionID', Number.isSafeInteger);
    for (const k of ['STUNPort', 'DERPPort']) f.field(no, k, (v) => v === -1 || isPort(v));
    for (const k of ['STUNOnly', 'InsecureForTests']) f.field(no, k, isBool);
  }
  return f.fixes;
}
