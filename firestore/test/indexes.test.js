// Shape check of firestore.indexes.json (the format `firebase deploy --only firestore:indexes`
// reads): known keys and values only, the indexes the app's queries need, and the TTL policies on
// expires_at of sessions and of their candidates. Needs no emulator.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

const file = JSON.parse(readFileSync(new URL('../firestore.indexes.json', import.meta.url), 'utf8'));
const ORDERS = ['ASCENDING', 'DESCENDING'];
const SCOPES = ['COLLECTION', 'COLLECTION_GROUP'];
const COLLECTIONS = {
  webrtc_sessions: ['caller_id', 'callee_id', 'status', 'offer', 'answer', 'created_at', 'updated_at', 'expires_at'],
  ice_candidates: ['sender', 'sender_id', 'candidate', 'sdpMid', 'sdpMLineIndex', 'created_at', 'expires_at'],
};

function checkKeys(object, allowed, where) {
  for (const key of Object.keys(object)) {
    assert.ok(allowed.includes(key), `${where}: unknown key ${key}`);
  }
}

test('top level has indexes and fieldOverrides only', () => {
  checkKeys(file, ['indexes', 'fieldOverrides'], 'file');
  assert.ok(Array.isArray(file.indexes));
  assert.ok(Array.isArray(file.fieldOverrides));
});

test('every composite index is well formed and names fields of the data model', () => {
  for (const [i, index] of file.indexes.entries()) {
    const where = `indexes[${i}]`;
    checkKeys(index, ['collectionGroup', 'queryScope', 'fields'], where);
    assert.ok(index.collectionGroup in COLLECTIONS, `${where}: unknown collection ${index.collectionGroup}`);
    assert.ok(SCOPES.includes(index.queryScope), `${where}: queryScope`);
    assert.ok(index.fields.length >= 2, `${where}: a composite index has at least two fields`);
    for (const field of index.fields) {
      checkKeys(field, ['fieldPath', 'order', 'arrayConfig'], where);
      assert.ok(COLLECTIONS[index.collectionGroup].includes(field.fieldPath), `${where}: ${field.fieldPath}`);
      assert.ok(ORDERS.includes(field.order), `${where}: order of ${field.fieldPath}`);
    }
    const paths = index.fields.map((f) => f.fieldPath);
    assert.equal(new Set(paths).size, paths.length, `${where}: a field appears twice`);
  }
});

test('the incoming-calls query (callee_id ==, status ==, newest first) has its index', () => {
  const match = file.indexes.find(
    (ix) =>
      ix.collectionGroup === 'webrtc_sessions' &&
      ix.queryScope === 'COLLECTION' &&
      JSON.stringify(ix.fields) ===
        JSON.stringify([
          { fieldPath: 'callee_id', order: 'ASCENDING' },
          { fieldPath: 'status', order: 'ASCENDING' },
          { fieldPath: 'created_at', order: 'DESCENDING' },
        ]),
  );
  assert.ok(match, 'no index for where(callee_id) where(status) orderBy(created_at desc)');
});

test('expires_at has a TTL policy on sessions and on candidates', () => {
  for (const [i, override] of file.fieldOverrides.entries()) {
    checkKeys(override, ['collectionGroup', 'fieldPath', 'ttl', 'indexes'], `fieldOverrides[${i}]`);
    for (const ix of override.indexes) {
      checkKeys(ix, ['order', 'arrayConfig', 'queryScope'], `fieldOverrides[${i}].indexes`);
      assert.ok(SCOPES.includes(ix.queryScope));
      assert.ok(ORDERS.includes(ix.order));
    }
  }
  const ttl = file.fieldOverrides.filter((o) => o.ttl === true);
  assert.deepEqual(
    ttl.map((o) => [o.collectionGroup, o.fieldPath]),
    [
      ['webrtc_sessions', 'expires_at'],
      ['ice_candidates', 'expires_at'],
    ],
  );
});
