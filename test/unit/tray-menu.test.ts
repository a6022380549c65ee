// The tray's items as Electron menu templates (no Electron needed: only its types): an exit node choice is a radio
// item that sets its pref when clicked (not when it is the one already chosen), allow-LAN a checkbox that sets the
// flipped value, and the model's exit node submenu comes through whole.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MenuItemConstructorOptions } from 'electron';
import type { TrayItem } from '../../main/controller/tray-model.ts';
import { menuItem, type TrayHandlers } from '../../main/electron/tray-menu.ts';
import type { AppPrefs } from '../../preload/api.ts';

function rig() {
  const set: Partial<AppPrefs>[] = [];
  const copied: string[] = [];
  const handlers: TrayHandlers = { onAction: () => {}, onSetPrefs: (p) => set.push(p) };
  const render = (item: TrayItem) => menuItem(item, handlers, (t) => copied.push(t));
  const click = (m: MenuItemConstructorOptions) => (m.click as (() => void) | undefined)?.();
  return { set, copied, render, click };
}

test('an exit node choice is a radio item: clicking another sets it, clicking the chosen one sets nothing', () => {
  const r = rig();
  const other = r.render({ kind: 'pref', style: 'radio', label: 'paris', checked: false, set: { exitNodeID: 's2' } });
  assert.equal(other.type, 'radio');
  assert.equal(other.checked, false);
  assert.equal(other.label, 'paris');
  r.click(other);
  const chosen = r.render({ kind: 'pref', style: 'radio', label: 'None', checked: true, set: { exitNodeID: '' } });
  r.click(chosen);
  const gone = r.render({ kind: 'pref', style: 'radio', label: 'x — gone', checked: false, set: {} });
  r.click(gone);
  assert.deepEqual(r.set, [{ exitNodeID: 's2' }]);
});

test('allow-LAN is a checkbox that sets what its item says; a submenu renders its items', () => {
  const r = rig();
  const lan: TrayItem = {
    kind: 'pref',
    style: 'checkbox',
    label: 'Allow LAN access',
    checked: true,
    set: { exitNodeAllowLANAccess: false },
  };
  const menu = r.render({ kind: 'submenu', label: 'Exit node: paris', items: [lan, { kind: 'separator' }] });
  const items = menu.submenu as MenuItemConstructorOptions[];
  assert.equal(items[0].type, 'checkbox');
  assert.equal(items[0].checked, true);
  assert.equal(items[1].type, 'separator');
  r.click(items[0]);
  assert.deepEqual(r.set, [{ exitNodeAllowLANAccess: false }]);
  r.click(r.render({ kind: 'copy', label: 'paris (100.64.0.2)', text: '100.64.0.2' }));
  assert.deepEqual(r.copied, ['100.64.0.2']);
});
