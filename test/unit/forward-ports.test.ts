// The window's side of port forwards (main/shared/forward-ports.ts): what its two fields add to the list, in the
// window's words, and only what the engine's parser (the same function) accepts; removing by tailnet port.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addForward, MAX_FORWARDS, parseForwardPorts, removeForward } from '../../main/shared/forward-ports.ts';

test('addForward: canonical entries, the local port defaulting to the tailnet one', () => {
  assert.deepEqual(addForward([], '8080', ''), { forwardPorts: ['8080'] });
  assert.deepEqual(addForward(['8080'], ' 2222 ', '22'), { forwardPorts: ['8080', '2222=22'] });
  assert.deepEqual(addForward(['8080'], '9000', '9000'), { forwardPorts: ['8080', '9000'] });
  // Whatever it returns, the engine's parser takes.
  const r = addForward(['8080', '2222=22'], '443', '8443');
  assert.ok('forwardPorts' in r);
  assert.equal(parseForwardPorts(r.forwardPorts).length, 3);
});

test('addForward: one sentence per refusal, nothing to send', () => {
  const said = (current: string[], t: string, l: string): string => {
    const r = addForward(current, t, l);
    assert.ok('error' in r, `${t}→${l} refused`);
    assert.match(r.error, /^[A-Z].*\.$/s, `a sentence: ${r.error}`);
    return r.error;
  };
  assert.match(said([], '', ''), /Give the tailnet port/);
  assert.match(said([], '0', ''), /tailnet port must be a number from 1 to 65535, not "0"/);
  assert.match(said([], '70000', ''), /not "70000"/);
  assert.match(said([], 'http', ''), /not "http"/);
  assert.match(said([], '8080', '-1'), /local port must be a number from 1 to 65535, not "-1"/);
  assert.deepEqual(addForward([], '8080', 'x'), {
    error: 'The local port must be a number from 1 to 65535, not "x".',
    field: 'local',
  });
  assert.match(said(['8080=80'], '8080', ''), /Tailnet port 8080 is forwarded already \(to this computer's 80\)/);
  const full = Array.from({ length: MAX_FORWARDS }, (_, i) => String(i + 1));
  assert.match(said(full, '9999', ''), /At most 64 ports/);
});

test('removeForward: by tailnet port, others kept as they were', () => {
  assert.deepEqual(removeForward(['8080', '2222=22', '443=8443'], 2222), ['8080', '443=8443']);
  assert.deepEqual(removeForward(['8080', '2222=22'], 22), ['8080', '2222=22']);
  assert.deepEqual(removeForward([], 1), []);
});
