// Hostinfo's machine facts (docs/parity.md): the os-release fields tailscaled reports, hostile or odd lines left out,
// and the Hostinfo we send carrying them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostFacts, parseOsRelease, withDebianVersion } from '../../main/engine/control/host-facts.ts';
import { buildHostinfo } from '../../main/engine/control/requests.ts';

test('os-release: ID, VERSION_ID and VERSION_CODENAME, quotes removed', () => {
  const text =
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n' +
    'VERSION_CODENAME=bookworm\nID=debian\n';
  assert.deepEqual(parseOsRelease(text), { Distro: 'debian', DistroVersion: '12', DistroCodeName: 'bookworm' });
});

test('os-release: missing, empty or hostile values are left out', () => {
  assert.deepEqual(parseOsRelease(''), {});
  assert.deepEqual(parseOsRelease('ID=\nVERSION_ID="<script>"\nVERSION_CODENAME=a\u0000b\n'), {});
  assert.equal(parseOsRelease(`ID=${'x'.repeat(500)}`).Distro?.length, 64);
});

test('Debian: the point release from /etc/debian_version, a testing codename only when none is known', () => {
  const deb = { Distro: 'debian', DistroVersion: '12', DistroCodeName: 'bookworm' };
  assert.deepEqual(withDebianVersion(deb, '12.11\n'), { ...deb, DistroVersion: '12.11' });
  assert.deepEqual(withDebianVersion(deb, 'trixie/sid\n'), deb);
  assert.deepEqual(withDebianVersion({ Distro: 'debian' }, 'trixie/sid'), {
    Distro: 'debian',
    DistroCodeName: 'trixie/sid',
  });
  assert.deepEqual(withDebianVersion({ Distro: 'ubuntu', DistroVersion: '24.04' }, '13.1'), {
    Distro: 'ubuntu',
    DistroVersion: '24.04',
  });
  assert.deepEqual(withDebianVersion(deb, '<bad>'), deb);
});

test('the Hostinfo we send carries the machine facts, and never says userspace', () => {
  const h = buildHostinfo('box', 0);
  const f = hostFacts();
  assert.equal(h.Userspace, false);
  assert.equal(h.UserspaceRouter, false);
  assert.equal(h.Machine, f.Machine);
  if (process.platform === 'linux') assert.equal(typeof h.Machine, 'string');
  assert.equal(h.Hostname, 'box');
});
