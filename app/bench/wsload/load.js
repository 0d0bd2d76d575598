// wsload: a closed-loop WebSocket load of a chat server, written apart from app/bench (another language,
// another client) so that a figure that holds under both is not an artefact of one tool.
//
//   node load.js --url http://127.0.0.1:18181 --proto causerie --server-pid 1234
//
// Every sender keeps --inflight messages not yet delivered to every other connection; each message
// carries a client id. It prints one JSON line: deliveries per second, and the server's CPU seconds and
// CPU per delivery when --server-pid names it (same machine).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:18181' },
    proto: { type: 'string', default: 'causerie' }, // or gorilla
    conns: { type: 'string', default: '1000' },
    users: { type: 'string', default: '20' },
    senders: { type: 'string', default: '10' },
    inflight: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '15' },
    'server-pid': { type: 'string', default: '' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  console.log(`node load.js [--url http://127.0.0.1:18181] [--proto causerie|gorilla] [--conns 1000] [--users 20]
  [--senders 10] [--inflight 3] [--seconds 15] [--server-pid N]
A closed-loop load: each sender keeps --inflight messages not yet delivered to every other connection.
Causerie servers need RATE_LIMIT=0 MAX_CONNS_PER_USER=0 MAX_CONNS_PER_IP=0 REGISTRATIONS_PER_IP=0.`);
  process.exit(0);
}
const conns = Number(opt.conns);
const senders = Number(opt.senders);
const inflight = Number(opt.inflight);
const causerie = opt.proto === 'causerie';

// cpuSeconds is the user and system time of process pid so far, from /proc.
function cpuSeconds(pid) {
  if (!pid) return null;
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

async function tokens() {
  if (!causerie) return [];
  const run = Date.now().toString(36);
  const out = [];
  for (let i = 0; i < Number(opt.users); i++) {
    const res = await fetch(`${opt.url}/api/register`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: `wsload-${run}-${i}@example.com`, password: 'password123', name: `wsload_${run}_${i}` }),
    });
    if (res.status !== 201) throw new Error(`register: ${res.status} ${await res.text()}`);
    out.push((await res.json()).token);
  }
  return out;
}

function open(i, list) {
  const base = opt.url.replace(/^http/, 'ws');
  const url = causerie ? `${base}/ws?token=${list[i % list.length]}&batch=1` : `${base}/ws`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, headers: causerie ? {} : { Origin: opt.url } });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

const pending = new Map(); // text -> deliveries still to come
let delivered = 0;
let sent = 0;
let running = true;
const waiting = []; // senders waiting for a slot, by index

function received(text, self) {
  const left = pending.get(text);
  if (left === undefined || self) return;
  delivered++;
  if (left > 1) {
    pending.set(text, left - 1);
    return;
  }
  pending.delete(text);
  const sender = Number(text.slice(1, text.indexOf('-')));
  sendNext(sender);
}

const sockets = [];
const seq = new Array(senders).fill(0);
function sendNext(s) {
  if (!running) return;
  const text = `s${s}-${seq[s]++}`;
  pending.set(text, causerie ? conns - 1 : conns); // the gorilla example sends a message to its sender too
  sent++;
  const frame = causerie ? JSON.stringify({ type: 'message', text, id: text }) : text;
  sockets[s].send(frame);
}

const list = await tokens();
for (let i = 0; i < conns; i++) {
  const ws = await open(i, list);
  sockets.push(ws);
  ws.on('message', (data) => {
    for (const part of data.toString().split('\n')) {
      if (!part) continue;
      if (!causerie) {
        received(part, false);
        continue;
      }
      // Not JSON.parse: on one thread it would set the pace. The tool knows its own texts (s<n>-<n>).
      if (!part.startsWith('{"type":"message"')) continue;
      const at = part.indexOf('"text":"s');
      if (at < 0) continue;
      const start = at + 8;
      received(part.slice(start, part.indexOf('"', start)), false);
    }
  });
}
// Let the joins and backlogs settle.
await new Promise((r) => setTimeout(r, 2000));
const pid = Number(opt['server-pid']) || 0;
const cpu0 = cpuSeconds(pid);
const t0 = performance.now();
const d0 = delivered;
for (let s = 0; s < senders; s++) for (let k = 0; k < inflight; k++) sendNext(s);
await new Promise((r) => setTimeout(r, Number(opt.seconds) * 1000));
running = false;
const seconds = (performance.now() - t0) / 1000;
const cpu = pid ? cpuSeconds(pid) - cpu0 : null;
const n = delivered - d0;
console.log(JSON.stringify({
  tool: 'wsload', proto: opt.proto, conns, senders, inflight, seconds: Number(seconds.toFixed(2)), sent,
  delivered: n, deliveries_per_sec: Math.round(n / seconds),
  server_cpu_seconds: cpu, server_us_per_delivery: cpu === null ? null : Number(((cpu / n) * 1e6).toFixed(3)),
}));
for (const ws of sockets) ws.terminate();
process.exit(0);
