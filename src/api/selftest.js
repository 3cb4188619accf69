// turnd self-test: a Trickle-ICE check through this TURN server, in the browser.
// Fetches credentials from this API, then for each transport connects two RTCPeerConnections
// to each other with iceTransportPolicy "relay", sends data both ways over a data channel and
// reports candidates, the selected pair and round-trip times. The outcome is also kept in
// window.selfTest and in #result (JSON), and <body data-state> goes idle → running → done.
"use strict";

const GATHER_TIMEOUT_MS = 10000;
const CONNECT_TIMEOUT_MS = 15000;
const PING_TIMEOUT_MS = 5000;
const PINGS = 5;

window.selfTest = { state: "idle", results: [] };

const $ = (id) => document.getElementById(id);

function setState(state, text) {
  window.selfTest.state = state;
  document.body.dataset.state = state;
  $("status").textContent = text;
}

// Which check a TURN URI belongs to: "udp", "tcp" or "tls".
function transportOf(uri) {
  if (uri.startsWith("turns:")) return "tls";
  if (!uri.startsWith("turn:")) return null;
  return /[?&]transport=tcp\b/i.test(uri) ? "tcp" : "udp";
}

function timeout(ms, what) {
  return new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms));
}

function describeCandidate(c) {
  return {
    type: c.type, protocol: c.protocol, address: c.address, port: c.port,
    relayProtocol: c.relayProtocol || null, url: c.url || null, candidate: c.candidate,
  };
}

// Candidates may arrive before the remote description is set: queue them until it is.
function trickle(from, to, log, done) {
  const queue = [];
  from.onicecandidate = (e) => {
    if (!e.candidate) { done(); return; }
    if (e.candidate.candidate) log.push(describeCandidate(e.candidate));
    if (to.remoteDescription) to.addIceCandidate(e.candidate).catch(() => {}); else queue.push(e.candidate);
  };
  return () => { for (const c of queue.splice(0)) to.addIceCandidate(c).catch(() => {}); };
}

// Answers pings and measures the round-trip of our own.
function pinger(channel, counts) {
  const pending = new Map();
  channel.onmessage = (e) => {
    const [kind, id] = String(e.data).split(":");
    counts.received += 1;
    if (kind === "ping") { channel.send(`pong:${id}`); counts.sent += 1; }
    if (kind === "pong" && pending.has(id)) { pending.get(id)(); pending.delete(id); }
  };
  return async (n) => {
    const rtts = [];
    for (let i = 0; i < n; i += 1) {
      const id = `${i}-${Math.random().toString(36).slice(2)}`;
      const started = performance.now();
      const answered = new Promise((resolve) => pending.set(id, resolve));
      channel.send(`ping:${id}`);
      counts.sent += 1;
      await Promise.race([answered, timeout(PING_TIMEOUT_MS, "ping")]);
      rtts.push(performance.now() - started);
    }
    return rtts;
  };
}

async function selectedPair(pc) {
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); });
  if (!pair) stats.forEach((s) => { if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s; });
  if (!pair) return null;
  const side = (id) => {
    const c = stats.get(id) || {};
    return { type: c.candidateType, address: c.address, port: c.port, protocol: c.protocol, relayProtocol: c.relayProtocol || null, url: c.url || null };
  };
  return {
    local: side(pair.localCandidateId), remote: side(pair.remoteCandidateId), state: pair.state,
    currentRoundTripTimeMs: pair.currentRoundTripTime === undefined ? null : pair.currentRoundTripTime * 1000,
    bytesSent: pair.bytesSent, bytesReceived: pair.bytesReceived,
  };
}

// Candidates as gathered lack relayProtocol and url in some browsers; the stats have them.
async function enrich(pc, candidates) {
  const stats = await pc.getStats();
  stats.forEach((s) => {
    if (s.type !== "local-candidate") return;
    for (const c of candidates) {
      if (c.address === s.address && c.port === s.port) {
        c.relayProtocol = c.relayProtocol || s.relayProtocol || null;
        c.url = c.url || s.url || null;
      }
    }
  });
}

const rttSummary = (rtts) => rtts.length === 0 ? null : {
  count: rtts.length,
  minMs: Math.min(...rtts), maxMs: Math.max(...rtts),
  avgMs: rtts.reduce((a, b) => a + b, 0) / rtts.length,
};

// One check: two peer connections through turnd over the URIs of one transport.
async function check(transport, uris, creds) {
  const result = {
    transport, uris, status: "failed", error: null, candidates: { a: [], b: [] }, iceErrors: [],
    selected: { a: null, b: null }, rtt: { aToB: null, bToA: null },
    messages: { a: { sent: 0, received: 0 }, b: { sent: 0, received: 0 } },
  };
  if (uris.length === 0) {
    result.status = "no-uri";
    result.error = `the credentials list no ${transport.toUpperCase()} URI`;
    return result;
  }
  const config = { iceServers: [{ urls: uris, username: creds.username, credential: creds.password }], iceTransportPolicy: "relay" };
  const a = new RTCPeerConnection(config);
  const b = new RTCPeerConnection(config);
  for (const pc of [a, b]) {
    pc.onicecandidateerror = (e) => result.iceErrors.push(`${e.url || "?"}: ${e.errorCode} ${e.errorText || ""}`.trim());
  }
  try {
    let gatheredA;
    const gathered = new Promise((resolve) => { gatheredA = resolve; });
    const flushToB = trickle(a, b, result.candidates.a, gatheredA);
    const flushToA = trickle(b, a, result.candidates.b, () => {});
    const channelA = a.createDataChannel("selftest");
    const channelB = new Promise((resolve) => { b.ondatachannel = (e) => resolve(e.channel); });
    const openA = new Promise((resolve) => { channelA.onopen = resolve; });
    await a.setLocalDescription();
    await b.setRemoteDescription(a.localDescription);
    flushToB();
    await b.setLocalDescription();
    await a.setRemoteDescription(b.localDescription);
    flushToA();
    // Gathering ends (or times out) before "no candidates" can be told apart from "slow".
    await Promise.race([gathered, timeout(GATHER_TIMEOUT_MS, "candidate gathering")]).catch(() => {});
    if (result.candidates.a.filter((c) => c.type === "relay").length === 0) {
      result.status = "no-candidates";
      result.error = `no relay candidate over ${transport.toUpperCase()}` +
        (result.iceErrors.length ? ` (${result.iceErrors[0]})` : "");
      return result;
    }
    const remote = await Promise.race([channelB, timeout(CONNECT_TIMEOUT_MS, "data channel")]);
    await Promise.race([openA, timeout(CONNECT_TIMEOUT_MS, "data channel open")]);
    if (remote.readyState !== "open") {
      await Promise.race([new Promise((resolve) => { remote.onopen = resolve; }), timeout(CONNECT_TIMEOUT_MS, "data channel open")]);
    }
    const pingFromA = pinger(channelA, result.messages.a);
    const pingFromB = pinger(remote, result.messages.b);
    result.rtt.aToB = rttSummary(await pingFromA(PINGS));
    result.rtt.bToA = rttSummary(await pingFromB(PINGS));
    result.selected.a = await selectedPair(a);
    result.selected.b = await selectedPair(b);
    await enrich(a, result.candidates.a);
    await enrich(b, result.candidates.b);
    const relayed = [result.selected.a, result.selected.b].every((p) => p && p.local.type === "relay" && p.remote.type === "relay");
    result.status = relayed ? "ok" : "failed";
    if (!relayed) result.error = "the selected pair is not relay-to-relay";
  } catch (e) {
    result.error = String(e.message || e);
  } finally {
    a.close();
    b.close();
  }
  return result;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null ? "" : String(text);
  row.appendChild(td);
}

const fmtMs = (v) => (v === null || v === undefined ? "–" : `${v.toFixed(1)} ms`);
const fmtSide = (s) => (s ? `${s.type} ${s.protocol || ""} ${s.address || ""}:${s.port || ""}${s.relayProtocol ? ` (relay over ${s.relayProtocol})` : ""}` : "–");

function render(result) {
  const section = document.createElement("section");
  section.className = "check";
  const h2 = document.createElement("h2");
  h2.textContent = result.transport.toUpperCase();
  const badge = document.createElement("span");
  const labels = { ok: ["ok", "relayed both ways"], "no-uri": ["none", "no URI"], "no-candidates": ["none", "no relay candidates"], failed: ["fail", "failed"] };
  const [cls, label] = labels[result.status] || ["fail", result.status];
  badge.className = `badge ${cls}`;
  badge.textContent = label;
  h2.appendChild(badge);
  section.appendChild(h2);
  const p = document.createElement("p");
  p.textContent = result.uris.length ? `URIs: ${result.uris.join(", ")}` : "No URI of this transport.";
  section.appendChild(p);
  if (result.error) {
    const err = document.createElement("p");
    err.textContent = result.error;
    section.appendChild(err);
  }
  const table = document.createElement("table");
  const head = table.insertRow();
  for (const t of ["peer", "type", "protocol", "address", "relay protocol"]) {
    const th = document.createElement("th");
    th.textContent = t;
    head.appendChild(th);
  }
  for (const [peer, list] of [["A", result.candidates.a], ["B", result.candidates.b]]) {
    for (const c of list) {
      const row = table.insertRow();
      [peer, c.type, c.protocol, `${c.address}:${c.port}`, c.relayProtocol].forEach((v) => cell(row, v));
    }
  }
  if (result.candidates.a.length + result.candidates.b.length > 0) section.appendChild(table);
  if (result.selected.a) {
    const sel = document.createElement("p");
    sel.textContent = `Selected pair (A): ${fmtSide(result.selected.a.local)} ⇄ ${fmtSide(result.selected.a.remote)}; ` +
      `ICE RTT ${fmtMs(result.selected.a.currentRoundTripTimeMs)}`;
    section.appendChild(sel);
  }
  if (result.rtt.aToB || result.rtt.bToA) {
    const rtt = document.createElement("p");
    const s = (r) => (r ? `avg ${fmtMs(r.avgMs)}, min ${fmtMs(r.minMs)}, max ${fmtMs(r.maxMs)} over ${r.count}` : "–");
    rtt.textContent = `Data channel round trips A→B: ${s(result.rtt.aToB)}; B→A: ${s(result.rtt.bToA)}.`;
    section.appendChild(rtt);
  }
  $("checks").appendChild(section);
}

async function fetchCredentials(key, user, ttl) {
  const response = await fetch("v1/turn/credentials", {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify({ username: user, ttl: Number(ttl) }),
    cache: "no-store",
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`credentials: HTTP ${response.status}: ${body.message || body.error || "error"}`);
  return body;
}

async function run() {
  $("run").disabled = true;
  $("checks").textContent = "";
  $("result").textContent = "";
  window.selfTest.results = [];
  window.selfTest.error = null;
  setState("running", "Fetching credentials…");
  let summary;
  try {
    const creds = await fetchCredentials($("key").value.trim(), $("user").value.trim(), $("ttl").value);
    window.selfTest.username = creds.username;
    for (const transport of ["udp", "tcp", "tls"]) {
      setState("running", `Checking ${transport.toUpperCase()}…`);
      const result = await check(transport, creds.uris.filter((u) => transportOf(u) === transport), creds);
      window.selfTest.results.push(result);
      render(result);
    }
    const ok = window.selfTest.results.filter((r) => r.status === "ok").map((r) => r.transport.toUpperCase());
    summary = ok.length ? `Done: relayed both ways over ${ok.join(", ")}.` : "Done: no transport relayed.";
  } catch (e) {
    window.selfTest.error = String(e.message || e);
    summary = window.selfTest.error;
  }
  $("result").textContent = JSON.stringify({ ...window.selfTest, state: "done" }, null, 2);
  $("run").disabled = false;
  setState("done", summary);
}

$("form").addEventListener("submit", (e) => { e.preventDefault(); run(); });
