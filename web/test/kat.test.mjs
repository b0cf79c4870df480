// carkey web key — known-answer tests: the browser protocol core against tests/vectors/aliro-expedited-kat.json.
// SPDX-License-Identifier: MIT
//
// Run: node --test web/test/
// Every deterministic value is compared byte for byte (ECDH, Kdh, salts, HKDF
// outputs, channel IVs and ciphertexts, the cryptogram, every APDU). WebCrypto signs
// with random nonces, so the device signature is verified, and the byte-exact AUTH1
// answer is checked with the vector's RFC 6979 signature handed in by the signer hook
// (after checking the hook was asked to sign exactly the vector's signed data).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { fromHex, toHex } from '../lib/bytes.js';
import { DEVICE_IV_PREFIX, READER_IV_PREFIX, channelIv } from '../lib/channel.js';
import * as crypto from '../lib/crypto.js';
import { KpersistentCache } from '../lib/kpersistent.js';
import * as tlv from '../lib/tlv.js';
import { State, UserDevice } from '../lib/user_device.js';

const KAT = JSON.parse(readFileSync(new URL('../../tests/vectors/aliro-expedited-kat.json', import.meta.url)));
const C = KAT.common;
const [STANDARD, FAST] = KAT.transactions;
const h = fromHex;
const BITMAP = h(STANDARD.auth1_response_encryption.plaintext_fields['5e']);

async function credential() {
  const { privateKey } = await crypto.importCredential(h(C.credential_long_term_private_key), h(C.credential_long_term_public_key));
  return { privateKey, publicBytes: h(C.credential_long_term_public_key) };
}

async function makeDevice(ephemeral, options = {}) {
  const keys = [];
  for (const [priv, pub] of ephemeral) keys.push(await crypto.importEphemeral(h(priv), h(pub)));
  return new UserDevice(await credential(), C.user_device_trusts.map((t) => [t.reader_group_identifier, h(t.reader_public_key)]), {
    newEphemeral: async () => keys.shift(),
    randomBytes: () => assert.fail('a KAT transaction must not need random bytes'),
    signalingBitmap: BITMAP,
    ...options,
  });
}

function transcriptFor(txn, block) {
  const parts = block.salt_components_in_order;
  return new crypto.Transcript({
    readerGroupPublicKey: h(C.reader_group_identifier_key), readerIdentifier: h(C.reader_identifier),
    readerEphemeralPublicKey: h(txn.inputs.reader_ephemeral_public_key), deviceEphemeralPublicKey: h(txn.inputs.ud_ephemeral_public_key),
    transactionId: h(txn.inputs.transaction_identifier), flag: h(parts.flag), proprietaryTlv: h(parts.proprietary_information_tlv),
    credentialPublicKey: h(C.credential_long_term_public_key),
  });
}

const udEphemeral = (txn) => [txn.inputs.ud_ephemeral_private_key, txn.inputs.ud_ephemeral_public_key];

test('SELECT answer and proprietary TLV are the vector bytes', async () => {
  const device = await makeDevice([]);
  const [select] = STANDARD.apdus;
  assert.equal(toHex(await device.process(h(select.c_apdu))), select.r_apdu);
  assert.equal(toHex(crypto.proprietaryTlv()), STANDARD.hkdf_volatile.salt_components_in_order.proprietary_information_tlv);
});

test('ECDH, X9.63 Kdh and the standard key schedule', async () => {
  const eph = await crypto.importEphemeral(h(STANDARD.inputs.ud_ephemeral_private_key), h(STANDARD.inputs.ud_ephemeral_public_key));
  const z = await crypto.ecdhSharedX(eph.privateKey, h(STANDARD.inputs.reader_ephemeral_public_key));
  assert.equal(toHex(z), STANDARD.ecdh.shared_x);
  const kdh = await crypto.deriveKdh(z, h(STANDARD.kdh_x963.shared_info));
  assert.equal(toHex(kdh), STANDARD.kdh_x963.kdh);
  const t = transcriptFor(STANDARD, STANDARD.hkdf_volatile);
  assert.equal(toHex(t.salt(crypto.LABEL_VOLATILE)), STANDARD.hkdf_volatile.salt);
  assert.equal(toHex(t.salt(crypto.LABEL_PERSISTENT)), STANDARD.hkdf_persistent.salt);
  assert.equal(toHex(t.info()), STANDARD.hkdf_volatile.info);
  const keys = await crypto.deriveStandardKeys(kdh, t);
  const want = STANDARD.hkdf_volatile.keys;
  assert.deepEqual([keys.skReader, keys.skDevice, keys.stepUpSk, keys.bleSk, keys.ursk].map(toHex),
    [want.SKReader, want.SKDevice, want.StepUpSK, want.BleSK, want.URSK]);
  assert.equal(toHex(await crypto.deriveKpersistent(kdh, t)), STANDARD.hkdf_persistent.keys.Kpersistent);
  const stepUp = STANDARD.stepup_keys_hkdf;
  assert.equal(toHex(await crypto.hkdf(keys.stepUpSk, new Uint8Array(0), h(stepUp.StepUpSKReader.info), 32)), stepUp.StepUpSKReader.okm);
});

test('X9.63 KDF longer than one block agrees with a hand-built one', async () => {
  const z = h('00'.repeat(31) + '01');
  const out = await crypto.x963kdf(z, h('aabb'), 48);
  const b1 = await crypto.sha256(fromHex(toHex(z) + '00000001aabb'));
  const b2 = await crypto.sha256(fromHex(toHex(z) + '00000002aabb'));
  assert.equal(toHex(out), toHex(b1) + toHex(b2).slice(0, 32));
});

test('signed data and signatures: the reader signature verifies, a flipped bit does not', async () => {
  const t = transcriptFor(STANDARD, STANDARD.hkdf_volatile);
  const rs = STANDARD.reader_signature;
  assert.equal(toHex(t.signedData(crypto.USAGE_READER)), rs.signed_data);
  assert.equal(toHex(t.signedData(crypto.USAGE_DEVICE)), STANDARD.ud_signature.signed_data);
  assert.ok(await crypto.verify(h(rs.public_key), h(rs.signed_data), h(rs.signature_r_s)));
  const bad = h(rs.signature_r_s);
  bad[10] ^= 1;
  assert.equal(await crypto.verify(h(rs.public_key), h(rs.signed_data), bad), false);
  // The vector's device signature (RFC 6979) verifies under WebCrypto: r || s is P1363.
  assert.ok(await crypto.verify(h(C.credential_long_term_public_key), h(STANDARD.ud_signature.signed_data), h(STANDARD.ud_signature.signature_r_s)));
});

test('standard transaction replays byte for byte (signature from the vector via the signer hook)', async () => {
  const signed = [];
  const device = await makeDevice([udEphemeral(STANDARD)], {
    sign: async (data) => {
      signed.push(toHex(data));
      return h(STANDARD.ud_signature.signature_r_s);
    },
  });
  for (const step of STANDARD.apdus) {
    assert.equal(toHex(await device.process(h(step.c_apdu))), step.r_apdu, `step ${step.step} ${step.command}`);
  }
  assert.deepEqual(signed, [STANDARD.ud_signature.signed_data]);
  assert.equal(toHex(device.kpersistentCache.get(h(C.reader_identifier))), STANDARD.hkdf_persistent.keys.Kpersistent);
  assert.equal(device.lastKind, 'standard');
  assert.equal(device.state, State.SECURE);
});

test('standard transaction with a WebCrypto signature: the AUTH1 answer opens to the vector plaintext and verifies', async () => {
  const device = await makeDevice([udEphemeral(STANDARD)]);
  const [select, auth0, auth1, exchange] = STANDARD.apdus;
  for (const step of [select, auth0]) assert.equal(toHex(await device.process(h(step.c_apdu))), step.r_apdu);
  const answer = await device.process(h(auth1.c_apdu));
  assert.equal(toHex(answer.slice(-2)), '9000');
  const enc = STANDARD.auth1_response_encryption;
  assert.equal(toHex(channelIv(DEVICE_IV_PREFIX, 1)), enc.iv);
  const plain = await crypto.open(await crypto.aesGcmKey(h(enc.key)), h(enc.iv), answer.slice(0, -2));
  const fields = tlv.decodeUnique(plain);
  assert.equal(toHex(fields.get(0x5a)), C.credential_long_term_public_key);
  assert.equal(toHex(fields.get(0x5e)), toHex(BITMAP));
  assert.ok(await crypto.verify(h(C.credential_long_term_public_key), h(STANDARD.ud_signature.signed_data), fields.get(0x9e)));
  // The channel after AUTH1 still answers EXCHANGE with the vector bytes (counters independent of the signature).
  assert.equal(toHex(await device.process(h(exchange.c_apdu))), exchange.r_apdu);
});

test('EXCHANGE encryption in both directions matches the vector IVs and ciphertexts', async () => {
  for (const txn of [STANDARD, FAST]) {
    const cmd = txn.exchange_command_encryption;
    assert.equal(toHex(channelIv(READER_IV_PREFIX, cmd.counter)), cmd.iv);
    const sealed = await crypto.seal(await crypto.aesGcmKey(h(cmd.key)), h(cmd.iv), h(cmd.plaintext));
    assert.equal(toHex(sealed), cmd.apdu_data);
    const rsp = txn.exchange_response_encryption;
    const sealedRsp = await crypto.seal(await crypto.aesGcmKey(h(rsp.key)), h(rsp.iv), h(rsp.plaintext));
    assert.equal(toHex(sealedRsp), rsp.apdu_data);
  }
});

test('fast transaction replays byte for byte from the cached Kpersistent', async () => {
  const cache = new KpersistentCache();
  cache.put(h(C.reader_identifier), h(STANDARD.hkdf_persistent.keys.Kpersistent));
  const device = await makeDevice([udEphemeral(FAST)], { kpersistentCache: cache });
  for (const step of FAST.apdus) {
    assert.equal(toHex(await device.process(h(step.c_apdu))), step.r_apdu, `step ${step.step} ${step.command}`);
  }
  assert.equal(device.lastKind, 'fast');
  const t = transcriptFor(FAST, FAST.hkdf_volatile_fast);
  assert.equal(toHex(t.salt(crypto.LABEL_VOLATILE_FAST)), FAST.hkdf_volatile_fast.salt);
  const keys = await crypto.deriveFastKeys(h(FAST.hkdf_volatile_fast.ikm), t);
  assert.equal(toHex(keys.cryptogramSk), FAST.cryptogram.key);
  assert.equal(toHex(crypto.cryptogramPlaintext(BITMAP)), FAST.cryptogram.plaintext);
});

test('standard then fast on one device: the cache carries Kpersistent from the first to the second', async () => {
  const device = await makeDevice([udEphemeral(STANDARD), udEphemeral(FAST)], {
    sign: async () => h(STANDARD.ud_signature.signature_r_s),
  });
  for (const step of STANDARD.apdus) assert.equal(toHex(await device.process(h(step.c_apdu))), step.r_apdu);
  device.reset();
  for (const step of FAST.apdus) assert.equal(toHex(await device.process(h(step.c_apdu))), step.r_apdu);
});

test('a tampered EXCHANGE is refused with 6982 and ends the transaction', async () => {
  const cache = new KpersistentCache();
  cache.put(h(C.reader_identifier), h(STANDARD.hkdf_persistent.keys.Kpersistent));
  const device = await makeDevice([udEphemeral(FAST)], { kpersistentCache: cache });
  const [select, auth0, exchange] = FAST.apdus;
  await device.process(h(select.c_apdu));
  await device.process(h(auth0.c_apdu));
  const bad = h(exchange.c_apdu);
  bad[8] ^= 0x01;
  assert.equal(toHex(await device.process(bad)), '6982');
  assert.equal(device.state, State.SELECTED);
  assert.equal(toHex(await device.process(h(exchange.c_apdu))), '6d00'); // no transaction any more
});

test('an untrusted reader group gets an AUTH0 answer, then the device drops the link at AUTH1', async () => {
  const keys = [await crypto.importEphemeral(h(STANDARD.inputs.ud_ephemeral_private_key), h(STANDARD.inputs.ud_ephemeral_public_key))];
  const device = new UserDevice(await credential(), [], { newEphemeral: async () => keys.shift() });
  const [select, auth0, auth1] = STANDARD.apdus;
  await device.process(h(select.c_apdu));
  assert.equal(toHex(await device.process(h(auth0.c_apdu))), auth0.r_apdu);
  await assert.rejects(device.process(h(auth1.c_apdu)), { name: 'Error', message: 'reader group not trusted' });
  assert.equal(device.state, State.IDLE);
});

test('bad APDUs get their status words', async () => {
  const device = await makeDevice([]);
  assert.equal(toHex(await device.process(h('00a4040009a000000909acce550200'))), '6a82'); // unknown AID
  assert.equal(toHex(await device.process(h('00a4'))), '6701');
  assert.equal(toHex(await device.process(h('10a4040009a000000909acce550100'))), '6800'); // chained SELECT
  assert.equal(toHex(await device.process(h('00a4050009a000000909acce550100'))), '6a86');
  assert.equal(toHex(await device.process(h('80800000050102'))), '6701'); // Lc says 5, 2 bytes follow
  assert.equal(toHex(await device.process(h(STANDARD.apdus[1].c_apdu))), '6d00'); // AUTH0 before SELECT
  await device.process(h(STANDARD.apdus[0].c_apdu));
  assert.equal(toHex(await device.process(h('80c9000004aabbccdd00'))), '6d00'); // EXCHANGE before AUTH0
  const dup = fromHex(STANDARD.apdus[1].c_apdu.replace('4101004201', '4101004101'));
  assert.equal(toHex(await device.process(dup)), '6701'); // a repeated tag
});

test('TLV decoding is strict', () => {
  assert.throws(() => tlv.decodeAll(h('8181')), tlv.TlvError);
  assert.throws(() => tlv.decodeAll(h('81817f' + '00'.repeat(0x7f))), /overlong/);
  assert.throws(() => tlv.decodeOne(h('800100ff')), /trailing/);
  assert.deepEqual(tlv.decodeAll(h('00020000')).map(([t, v]) => [t, toHex(v)]), [[0, '0000']]);
  assert.equal(toHex(tlv.encode(0x7f66, new Uint8Array(200))).slice(0, 10), '7f6681c8' + '00');
});
