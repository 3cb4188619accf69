// firestore.rules against the Cloud Firestore emulator: an allowed and a refused case for every
// rule. Needs FIRESTORE_EMULATOR_HOST (host:port of a running emulator; scripts/test-infra
// starts one). RULES_FILE picks another rules file (the broken-variant check uses it).

import { readFileSync } from 'node:fs';
import { after, before, beforeEach, describe, test } from 'node:test';
import {
  assertFails,
  assertSucceeds,
  initializeTestEnvironment,
} from '@firebase/rules-unit-testing';
import {
  Timestamp,
  addDoc,
  collection,
  deleteDoc,
  doc,
  getDoc,
  getDocs,
  query,
  serverTimestamp,
  setDoc,
  setLogLevel,
  updateDoc,
  where,
} from 'firebase/firestore';

const rulesFile = process.env.RULES_FILE ?? new URL('../firestore.rules', import.meta.url);
const [host, port] = (process.env.FIRESTORE_EMULATOR_HOST ?? '').split(':');
if (!host || !port) {
  throw new Error('FIRESTORE_EMULATOR_HOST=host:port of a running Firestore emulator is required');
}

const HOUR = 60 * 60 * 1000;
const SDP = 'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n';
const CANDIDATE = 'candidate:842163049 1 udp 1677729535 203.0.113.10 49152 typ relay raddr 0.0.0.0 rport 0';

let env;

// Refusals are expected here; the SDK would log each one.
setLogLevel('silent');

before(async () => {
  env = await initializeTestEnvironment({
    projectId: `turnd-rules-${process.pid}`,
    firestore: { host, port: Number(port), rules: readFileSync(rulesFile, 'utf8') },
  });
});

after(async () => {
  await env?.cleanup();
});

beforeEach(async () => {
  await env.clearFirestore();
});

const db = (uid) => (uid ? env.authenticatedContext(uid) : env.unauthenticatedContext()).firestore();
const sessionRef = (uid, id = 's1') => doc(db(uid), 'webrtc_sessions', id);
const candidatesOf = (uid, id = 's1') => collection(db(uid), 'webrtc_sessions', id, 'ice_candidates');

// A new session as the caller writes it.
const newSession = (overrides = {}) => ({
  caller_id: 'alice',
  callee_id: 'bob',
  status: 'pending',
  created_at: serverTimestamp(),
  updated_at: serverTimestamp(),
  expires_at: Timestamp.fromMillis(Date.now() + HOUR / 2),
  ...overrides,
});

// Stores a session as it would be at some point of its life, bypassing the rules.
// Returns the stored fields.
async function seed(fields = {}, id = 's1') {
  const data = {
    caller_id: 'alice',
    callee_id: 'bob',
    status: 'pending',
    created_at: Timestamp.fromMillis(Date.now() - 60_000),
    updated_at: Timestamp.fromMillis(Date.now() - 60_000),
    expires_at: Timestamp.fromMillis(Date.now() + HOUR / 2),
    ...fields,
  };
  await env.withSecurityRulesDisabled(async (ctx) => {
    await setDoc(doc(ctx.firestore(), 'webrtc_sessions', id), data);
  });
  return data;
}

// Stores a candidate as its party writes it (sender_id of the seeded parties), bypassing the
// rules.
async function seedCandidate(sender, id = `${sender}_0`, session = 's1') {
  const expiresAt = Timestamp.fromMillis(Date.now() + HOUR / 2);
  await env.withSecurityRulesDisabled(async (ctx) => {
    await setDoc(doc(ctx.firestore(), 'webrtc_sessions', session, 'ice_candidates', id), {
      sender,
      sender_id: sender === 'caller' ? 'alice' : 'bob',
      candidate: CANDIDATE,
      sdpMid: '0',
      sdpMLineIndex: 0,
      created_at: Timestamp.now(),
      expires_at: expiresAt,
    });
  });
}

const step = (fields) => ({ ...fields, updated_at: serverTimestamp() });

describe('reading a session', () => {
  test('caller and callee can read it', async () => {
    await seed();
    await assertSucceeds(getDoc(sessionRef('alice')));
    await assertSucceeds(getDoc(sessionRef('bob')));
  });

  test('third party cannot read a session', async () => {
    await seed();
    await assertFails(getDoc(sessionRef('mallory')));
  });

  test('signed-out users cannot read a session', async () => {
    await seed();
    await assertFails(getDoc(sessionRef(null)));
  });

  test('the callee can list incoming calls, but not everyone\'s', async () => {
    await seed({}, 's1');
    await seed({ caller_id: 'carol', callee_id: 'dave' }, 's2');
    const sessions = collection(db('bob'), 'webrtc_sessions');
    const incoming = await assertSucceeds(
      getDocs(query(sessions, where('callee_id', '==', 'bob'), where('status', '==', 'pending'))),
    );
    if (incoming.size !== 1) throw new Error(`expected 1 incoming call, got ${incoming.size}`);
    await assertFails(getDocs(query(sessions, where('status', '==', 'pending'))));
  });
});

describe('creating a session', () => {
  test('the caller creates a pending session expiring within the hour', async () => {
    await assertSucceeds(setDoc(sessionRef('alice'), newSession()));
  });

  test('nobody creates a session in someone else\'s name', async () => {
    await assertFails(setDoc(sessionRef('mallory'), newSession()));
    await assertFails(setDoc(sessionRef('bob'), newSession()));
    await assertFails(setDoc(sessionRef(null), newSession()));
  });

  test('a new session must be pending', async () => {
    await assertFails(setDoc(sessionRef('alice'), newSession({ status: 'connected' })));
  });

  test('a session expires at most one hour ahead, and in the future', async () => {
    const tooLate = Timestamp.fromMillis(Date.now() + 2 * HOUR);
    await assertFails(setDoc(sessionRef('alice'), newSession({ expires_at: tooLate })));
    const past = Timestamp.fromMillis(Date.now() - 1000);
    await assertFails(setDoc(sessionRef('alice'), newSession({ expires_at: past })));
  });

  test('no extra fields, no offer before the offered step, no TURN credentials', async () => {
    await assertFails(setDoc(sessionRef('alice'), newSession({ offer: SDP })));
    await assertFails(setDoc(sessionRef('alice'), newSession({ turn_password: 'x' })));
  });

  test('types are checked: timestamps from the server, a callee uid other than the caller', async () => {
    await assertFails(setDoc(sessionRef('alice'), newSession({ created_at: Timestamp.now() })));
    await assertFails(setDoc(sessionRef('alice'), newSession({ callee_id: 42 })));
    await assertFails(setDoc(sessionRef('alice'), newSession({ callee_id: 'alice' })));
    await assertFails(setDoc(sessionRef('alice'), newSession({ expires_at: 'soon' })));
  });
});

describe('the state machine', () => {
  test('pending -> offered by the caller, with the offer', async () => {
    await seed();
    await assertSucceeds(updateDoc(sessionRef('alice'), step({ status: 'offered', offer: SDP })));
  });

  test('only the caller writes the offer', async () => {
    await seed();
    await assertFails(updateDoc(sessionRef('bob'), step({ status: 'offered', offer: SDP })));
    await assertFails(updateDoc(sessionRef('mallory'), step({ status: 'offered', offer: SDP })));
  });

  test('offered -> answered by the callee, with the answer', async () => {
    await seed({ status: 'offered', offer: SDP });
    await assertSucceeds(updateDoc(sessionRef('bob'), step({ status: 'answered', answer: SDP })));
  });

  test('only the callee writes the answer, and never the offer', async () => {
    await seed({ status: 'offered', offer: SDP });
    await assertFails(updateDoc(sessionRef('alice'), step({ status: 'answered', answer: SDP })));
    await assertFails(
      updateDoc(sessionRef('bob'), step({ status: 'answered', answer: SDP, offer: 'v=0\r\n' })),
    );
  });

  test('answered -> connected by either party', async () => {
    await seed({ status: 'answered', offer: SDP, answer: SDP });
    await assertSucceeds(updateDoc(sessionRef('alice'), step({ status: 'connected' })));
    await seed({ status: 'answered', offer: SDP, answer: SDP });
    await assertSucceeds(updateDoc(sessionRef('bob'), step({ status: 'connected' })));
  });

  test('connected, answered, offered and pending sessions can be ended', async () => {
    for (const status of ['connected', 'answered', 'offered', 'pending']) {
      await seed({ status });
      await assertSucceeds(updateDoc(sessionRef('bob'), step({ status: 'ended' })));
    }
  });

  test('no skipping, no going back, nothing after ended', async () => {
    await seed();
    await assertFails(updateDoc(sessionRef('alice'), step({ status: 'connected' })));
    await seed({ status: 'answered', offer: SDP, answer: SDP });
    await assertFails(updateDoc(sessionRef('alice'), step({ status: 'offered' })));
    await assertFails(updateDoc(sessionRef('alice'), step({ status: 'pending' })));
    await seed({ status: 'ended' });
    await assertFails(updateDoc(sessionRef('alice'), step({ status: 'pending' })));
    await assertFails(updateDoc(sessionRef('alice'), step({ status: 'ended' })));
  });

  test('a third party cannot end a call', async () => {
    await seed({ status: 'connected' });
    await assertFails(updateDoc(sessionRef('mallory'), step({ status: 'ended' })));
  });

  test('updates stamp updated_at and leave the parties and the expiry alone', async () => {
    await seed();
    await assertFails(updateDoc(sessionRef('alice'), { status: 'offered', offer: SDP }));
    await assertFails(
      updateDoc(sessionRef('alice'), step({ status: 'offered', offer: SDP, callee_id: 'mallory' })),
    );
    const later = Timestamp.fromMillis(Date.now() + HOUR);
    await assertFails(
      updateDoc(sessionRef('alice'), step({ status: 'offered', offer: SDP, expires_at: later })),
    );
  });

  test('SDP is a string of at most 64 KiB', async () => {
    await seed();
    const huge = 'a'.repeat(65537);
    await assertFails(updateDoc(sessionRef('alice'), step({ status: 'offered', offer: huge })));
    await assertFails(updateDoc(sessionRef('alice'), step({ status: 'offered', offer: 7 })));
    await assertSucceeds(
      updateDoc(sessionRef('alice'), step({ status: 'offered', offer: 'a'.repeat(65536) })),
    );
  });

  test('an expired session can be ended but not moved on', async () => {
    const expired = { expires_at: Timestamp.fromMillis(Date.now() - 1000) };
    await seed({ ...expired, status: 'answered', offer: SDP, answer: SDP });
    await assertFails(updateDoc(sessionRef('alice'), step({ status: 'connected' })));
    await seed({ ...expired, status: 'offered', offer: SDP });
    await assertSucceeds(updateDoc(sessionRef('alice'), step({ status: 'ended' })));
  });

  test('an expired answered call can be ended, by either party, not by a third', async () => {
    const expired = { expires_at: Timestamp.fromMillis(Date.now() - 1000) };
    await seed({ ...expired, status: 'answered', offer: SDP, answer: SDP });
    await assertFails(updateDoc(sessionRef('mallory'), step({ status: 'ended' })));
    await assertSucceeds(updateDoc(sessionRef('alice'), step({ status: 'ended' })));
    await seed({ ...expired, status: 'answered', offer: SDP, answer: SDP });
    await assertSucceeds(updateDoc(sessionRef('bob'), step({ status: 'ended' })));
  });
});

describe('deleting a session', () => {
  test('a party deletes an expired session', async () => {
    await seed({ expires_at: Timestamp.fromMillis(Date.now() - 1000) });
    await assertSucceeds(deleteDoc(sessionRef('bob')));
  });

  test('nobody deletes a live session, nor a stranger an expired one', async () => {
    await seed();
    await assertFails(deleteDoc(sessionRef('alice')));
    await seed({ expires_at: Timestamp.fromMillis(Date.now() - 1000) });
    await assertFails(deleteDoc(sessionRef('mallory')));
  });
});

describe('ICE candidates', () => {
  const PARTY = { caller: 'alice', callee: 'bob' };
  // A candidate as its party writes it for `session` (as seed() returned it).
  const candidate = (sender, session, overrides = {}) => ({
    sender,
    sender_id: PARTY[sender],
    candidate: CANDIDATE,
    sdpMid: '0',
    sdpMLineIndex: 0,
    created_at: serverTimestamp(),
    expires_at: session.expires_at,
    ...overrides,
  });
  const candidateRef = (uid, id, session = 's1') => doc(candidatesOf(uid, session), id);
  const expired = () => ({ expires_at: Timestamp.fromMillis(Date.now() - 1000) });

  test('each party writes its own candidates', async () => {
    const s = await seed({ status: 'offered', offer: SDP });
    await assertSucceeds(setDoc(candidateRef('alice', 'caller_0'), candidate('caller', s)));
    await assertSucceeds(setDoc(candidateRef('bob', 'callee_0'), candidate('callee', s)));
  });

  test('nobody writes candidates for the other party, nor a third party at all', async () => {
    const s = await seed({ status: 'offered', offer: SDP });
    await assertFails(setDoc(candidateRef('alice', 'callee_0'), candidate('callee', s, { sender_id: 'alice' })));
    await assertFails(setDoc(candidateRef('bob', 'caller_0'), candidate('caller', s, { sender_id: 'bob' })));
    await assertFails(setDoc(candidateRef('mallory', 'caller_0'), candidate('caller', s, { sender_id: 'mallory' })));
    // sender_id names the writer: nobody signs a candidate with another uid.
    await assertFails(setDoc(candidateRef('alice', 'caller_0'), candidate('caller', s, { sender_id: 'bob' })));
  });

  test('no candidates after the call ended', async () => {
    const s = await seed({ status: 'ended' });
    await assertFails(setDoc(candidateRef('alice', 'caller_0'), candidate('caller', s)));
  });

  test('no candidates after the session expired', async () => {
    const s = await seed({ ...expired(), status: 'connected', offer: SDP, answer: SDP });
    await assertFails(setDoc(candidateRef('alice', 'caller_0'), candidate('caller', s)));
  });

  test('no candidates once the session is gone', async () => {
    const s = await seed({ status: 'offered', offer: SDP });
    await env.withSecurityRulesDisabled((ctx) => deleteDoc(doc(ctx.firestore(), 'webrtc_sessions', 's1')));
    await assertFails(setDoc(candidateRef('alice', 'caller_0'), candidate('caller', s)));
  });

  test('a candidate carries its session\'s expires_at, for its TTL', async () => {
    const s = await seed({ status: 'offered', offer: SDP });
    const later = Timestamp.fromMillis(s.expires_at.toMillis() + HOUR);
    await assertFails(setDoc(candidateRef('alice', 'caller_0'), candidate('caller', s, { expires_at: later })));
    const { expires_at: _, ...withoutExpiry } = candidate('caller', s);
    await assertFails(setDoc(candidateRef('alice', 'caller_0'), withoutExpiry));
    await assertSucceeds(setDoc(candidateRef('alice', 'caller_0'), candidate('caller', s)));
  });

  test('at most 100 candidates per party: ids <sender>_0 to <sender>_99, written once', async () => {
    const s = await seed({ status: 'offered', offer: SDP });
    await assertSucceeds(setDoc(candidateRef('alice', 'caller_99'), candidate('caller', s)));
    await assertSucceeds(setDoc(candidateRef('bob', 'callee_10'), candidate('callee', s)));
    for (const id of ['caller_100', 'caller_01', 'caller_-1', 'caller_', 'caller_1x', 'c1', 'x_caller_1']) {
      await assertFails(setDoc(candidateRef('alice', id), candidate('caller', s)));
    }
    // The id names the sender, and a random id (addDoc) is refused.
    await assertFails(setDoc(candidateRef('alice', 'callee_1'), candidate('caller', s)));
    await assertFails(addDoc(candidatesOf('alice'), candidate('caller', s)));
    // An id already used cannot be written again.
    await assertFails(setDoc(candidateRef('alice', 'caller_99'), candidate('caller', s)));
  });

  test('a party that tries to write without end is stopped at 100 candidates', async () => {
    const s = await seed({ status: 'offered', offer: SDP });
    let accepted = 0;
    for (let n = 0; n < 150; n++) {
      try {
        await setDoc(candidateRef('alice', `caller_${n}`), candidate('caller', s));
        accepted++;
      } catch {
        // refused: counted below
      }
    }
    if (accepted !== 100) throw new Error(`expected 100 accepted candidates, got ${accepted}`);
  });

  test('candidate fields are checked: at most 1 KiB, typed, nothing extra', async () => {
    const s = await seed({ status: 'offered', offer: SDP });
    const ref = candidateRef('alice', 'caller_0');
    const long = 'a'.repeat(1025);
    await assertFails(setDoc(ref, candidate('caller', s, { candidate: long })));
    await assertFails(setDoc(ref, candidate('caller', s, { sdpMLineIndex: '0' })));
    await assertFails(setDoc(ref, candidate('caller', s, { sdpMid: 0 })));
    await assertFails(setDoc(ref, candidate('caller', s, { username: 'x' })));
    await assertFails(setDoc(ref, candidate('caller', s, { created_at: Timestamp.now() })));
    await assertSucceeds(
      setDoc(ref, candidate('caller', s, { candidate: 'a'.repeat(1024), sdpMid: null, sdpMLineIndex: null })),
    );
  });

  test('both parties read the candidates, nobody else', async () => {
    await seed({ status: 'offered', offer: SDP });
    await seedCandidate('caller');
    await assertSucceeds(getDocs(candidatesOf('alice')));
    await assertSucceeds(getDocs(candidatesOf('bob')));
    await assertFails(getDocs(candidatesOf('mallory')));
    await assertFails(getDocs(candidatesOf(null)));
  });

  test('once the session is gone, the author still finds its own candidates, nobody else does', async () => {
    await seedCandidate('caller');
    await seedCandidate('callee');
    const own = await assertSucceeds(getDocs(query(candidatesOf('alice'), where('sender_id', '==', 'alice'))));
    if (own.size !== 1) throw new Error(`expected 1 own candidate, got ${own.size}`);
    await assertSucceeds(getDoc(candidateRef('bob', 'callee_0')));
    await assertFails(getDoc(candidateRef('bob', 'caller_0')));
    await assertFails(getDocs(candidatesOf('alice')));
    await assertFails(getDocs(query(candidatesOf('mallory'), where('sender_id', '==', 'alice'))));
  });

  test('candidates are never changed', async () => {
    await seed({ status: 'offered', offer: SDP });
    await seedCandidate('caller');
    const ref = candidateRef('alice', 'caller_0');
    await assertFails(updateDoc(ref, { candidate: CANDIDATE.replace('49152', '49153') }));
  });

  test('a party deletes the candidates of an expired session, not the other\'s of a live one', async () => {
    await seed({ ...expired(), status: 'ended' });
    await seedCandidate('caller');
    await assertFails(deleteDoc(candidateRef('mallory', 'caller_0')));
    await assertSucceeds(deleteDoc(candidateRef('bob', 'caller_0')));
    await seed({ status: 'connected' }, 's2');
    await seedCandidate('caller', 'caller_0', 's2');
    await assertFails(deleteDoc(candidateRef('bob', 'caller_0', 's2')));
    await assertFails(deleteDoc(candidateRef('mallory', 'caller_0', 's2')));
  });

  test('the author deletes its own candidates at any time', async () => {
    await seed({ status: 'connected' });
    await seedCandidate('caller');
    await assertSucceeds(deleteDoc(candidateRef('alice', 'caller_0')));
  });

  test('candidates of a deleted session can still be deleted by their author, not by others', async () => {
    await seed({ ...expired(), status: 'ended' });
    await seedCandidate('caller');
    await seedCandidate('callee');
    await assertSucceeds(deleteDoc(sessionRef('alice')));
    await assertFails(deleteDoc(candidateRef('mallory', 'caller_0')));
    await assertFails(deleteDoc(candidateRef('alice', 'callee_0')));
    await assertSucceeds(deleteDoc(candidateRef('alice', 'caller_0')));
    await assertSucceeds(deleteDoc(candidateRef('bob', 'callee_0')));
  });
});
