// Apache's openwhisk npm client against the executor, as a user's script
// would use it. Run by ow-executor/tests/api/openwhisk_client.rs with
// OW_APIHOST (http://127.0.0.1:PORT), OW_AUTH (uuid:key) and ECHO_WASM
// (path of the echo example). Exits non-zero on the first failed check.
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const openwhisk = require('openwhisk');

const ow = openwhisk({ apihost: process.env.OW_APIHOST, api_key: process.env.OW_AUTH });
const code = fs.readFileSync(process.env.ECHO_WASM);

async function eventually(what, f) {
  // The non-blocking activation's record appears when it ends: poll.
  for (let i = 0; i < 200; i++) {
    try {
      return await f();
    } catch (e) {
      if (e.statusCode !== 404) throw e;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${what}: never found`);
}

(async () => {
  const created = await ow.actions.create({
    name: 'echo', action: code, kind: 'wasm:0.1',
    params: { fromDefault: 'd', shadowed: 'default' },
    annotations: { team: 'wasm' },
  });
  assert.equal(created.name, 'echo');
  assert.equal(created.namespace, 'guest');
  assert.equal(created.exec.kind, 'wasm:0.1');

  // A second create without overwrite: 409.
  await assert.rejects(ow.actions.create({ name: 'echo', action: code, kind: 'wasm:0.1' }),
    (e) => e.statusCode === 409);

  const list = await ow.actions.list();
  assert.deepEqual(list.map((a) => a.name), ['echo']);

  const got = await ow.actions.get({ name: 'echo' });
  assert.equal(Buffer.from(got.exec.code, 'base64').compare(code), 0, 'the code comes back');
  assert.deepEqual(got.parameters.find((p) => p.key === 'fromDefault'), { key: 'fromDefault', value: 'd' });

  // Blocking, the whole record; default parameters merge under the given ones.
  const record = await ow.actions.invoke({ name: 'echo', blocking: true, params: { shadowed: 'given', n: 1 } });
  assert.match(record.activationId, /^[0-9a-f]{32}$/);
  assert.equal(record.response.status, 'success');
  assert.equal(record.response.success, true);
  assert.deepEqual(record.response.result, { fromDefault: 'd', shadowed: 'given', n: 1 });
  assert.ok(record.end >= record.start);
  assert.ok(record.annotations.some((a) => a.key === 'kind' && a.value === 'wasm:0.1'));

  // Blocking, the result only.
  const result = await ow.actions.invoke({ name: 'echo', blocking: true, result: true, params: { x: 2 } });
  assert.deepEqual(result, { fromDefault: 'd', shadowed: 'default', x: 2 });

  // Non-blocking: an activation id now, the record later.
  const started = await ow.actions.invoke({ name: 'echo', params: { later: true } });
  assert.match(started.activationId, /^[0-9a-f]{32}$/);
  const later = await eventually('activation', () => ow.activations.get({ name: started.activationId }));
  assert.deepEqual(later.response.result, { fromDefault: 'd', shadowed: 'default', later: true });
  const res = await ow.activations.result({ name: started.activationId });
  assert.deepEqual(res.result, later.response.result);
  const logs = await ow.activations.logs({ name: started.activationId });
  assert.ok(Array.isArray(logs.logs));
  const activations = await ow.activations.list({ name: 'echo' });
  assert.ok(activations.some((a) => a.activationId === started.activationId));

  // Update (overwrite) and the new version.
  const updated = await ow.actions.update({ name: 'echo', action: code, kind: 'wasm:0.1', params: { v: 2 } });
  assert.equal(updated.version, '0.0.2');
  const after = await ow.actions.invoke({ name: 'echo', blocking: true, result: true });
  assert.deepEqual(after, { v: 2 });

  // Unknown action: 404.
  await assert.rejects(ow.actions.invoke({ name: 'nope', blocking: true }), (e) => e.statusCode === 404);

  await ow.actions.delete({ name: 'echo' });
  await assert.rejects(ow.actions.get({ name: 'echo' }), (e) => e.statusCode === 404);

  // Wrong credentials: 401.
  const stranger = openwhisk({ apihost: process.env.OW_APIHOST, api_key: 'uuid:wrong' });
  await assert.rejects(stranger.actions.list(), (e) => e.statusCode === 401);
  console.log('openwhisk client: all checks passed');
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
