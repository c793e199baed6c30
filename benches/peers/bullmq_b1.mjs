// B1 on BullMQ + Redis: the peer figure for docs/performance.md ("Against the peers").
//
// The journey, per contact (journey's `bench clicks`, src/bench/clicks.rs):
//   event "signup" → send email "welcome" → check clicked within 1s { yes: end, no: end }
// and every even-numbered contact clicks as soon as its email is sent.
//
// How BullMQ does it here (three queues, one worker each, all in this process):
//   producer  addBulk of `signup` jobs in chunks (an ingestion API taking batches).
//   signup    writes the contact's state (a Redis hash), "sends" the email (adds its id to an
//             in-memory set, as journey's bench sink does nothing heavier), schedules the
//             click window as a delayed `check` job (jobId `check-<contact>`); for an even
//             contact the recipient's click then arrives as a `click` job, from outside.
//   click     takes the `yes` branch if the contact is still waiting (HSETNX on its hash)
//             and cancels its pending check (Queue.remove), as journey deletes the timer.
//   check     when due: takes the `no` branch unless the click took `yes` first (HSETNX).
// A branch counts once Redis has acknowledged its write (with `appendfsync always`, once it
// is on disk). Figure: N / (wall − window), wall = first add → last branch, as B1 computes
// it; lateness of the checks that fired, against their due time (added + delay).
//
// Run: node bullmq_b1.mjs --contacts 20000 --aof always   (starts its own redis-server)
//      node bullmq_b1.mjs --contacts 20000 --aof no
// Options: --concurrency 50 (each worker), --batch 500 (addBulk chunk), --in-flight 1
// (addBulk calls outstanding), --window 1000 (ms), --redis-server PATH, --json.

import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createRequire } from 'node:module';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith('--')) {
      const next = all[i + 1];
      acc.push([a.slice(2), next === undefined || next.startsWith('--') ? 'true' : next]);
    }
    return acc;
  }, []),
);
const N = Number(args.contacts ?? 20000);
const AOF = args.aof ?? 'always'; // always | everysec | no (AOF off)
const CONCURRENCY = Number(args.concurrency ?? 50);
const BATCH = Number(args.batch ?? 500);
const IN_FLIGHT = Number(args['in-flight'] ?? 1);
const WINDOW = Number(args.window ?? 1000);
const REDIS_SERVER = args['redis-server'] ?? 'redis-server';
const JSON_OUT = args.json === 'true';
const TIMEOUT_MS = Number(args.timeout ?? 600_000);

const freePort = () =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.floor(p * sorted.length));
  return sorted[i];
}

function info(text, key) {
  const m = text.match(new RegExp(`^${key}:(.*)$`, 'm'));
  return m ? m[1].trim() : undefined;
}

let redisProc; // killed on the way out, even on failure

async function main() {
  // Our own Redis: fresh data directory, AOF as asked, no RDB snapshots.
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'bullmq-b1-'));
  const redisArgs = [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
    '--appendonly', AOF === 'no' ? 'no' : 'yes',
    ...(AOF === 'no' ? [] : ['--appendfsync', AOF]),
    '--maxmemory-policy', 'noeviction', // BullMQ's requirement
  ];
  const redis = spawn(REDIS_SERVER, redisArgs, { stdio: ['ignore', 'ignore', 'inherit'] });
  redisProc = redis;
  let redisExited = false;
  redis.on('exit', () => { redisExited = true; });
  const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
  const state = new IORedis(connection);
  state.on('error', () => {}); // refused until redis-server listens; retried below
  for (let i = 0; ; i++) {
    try {
      if ((await state.ping()) === 'PONG') break;
    } catch {
      /* starting */
    }
    if (i > 100 || redisExited) throw new Error('redis-server did not start');
    await sleep(50);
  }
  const cfg = Object.fromEntries(
    await Promise.all(['appendonly', 'appendfsync', 'save'].map(async (k) => (await state.config('GET', k)).slice(0, 2))),
  );

  const defaultJobOptions = { removeOnComplete: true, removeOnFail: false };
  const signups = new Queue('signup', { connection, defaultJobOptions });
  const clicks = new Queue('click', { connection, defaultJobOptions });
  const checks = new Queue('check', { connection, defaultJobOptions });

  const sent = new Set(); // the "email sink": message ids sent
  let branched = 0;
  let yes = 0;
  let no = 0;
  let clicksLost = 0;
  let lastBranch = 0;
  const fired = []; // check taken up by its worker − due
  const durable = []; // `no` branch acknowledged by Redis − due
  const completed = []; // check job completed (moveToFinished acknowledged) − due
  const pendingClicks = new Set();
  let resolveDone;
  const done = new Promise((r) => { resolveDone = r; });
  const branch = () => {
    branched += 1;
    lastBranch = performance.now();
    if (branched === N) resolveDone();
  };

  const signupWorker = new Worker(
    'signup',
    async (job) => {
      const contact = job.data.contact;
      const messageId = `${contact}:welcome`;
      const now = Date.now();
      // The contact's state: in the journey, at the send, then waiting for the click.
      await state.hset(`contact:${contact}`, 'step', 'waiting', 'message', messageId, 'sent_at', now);
      sent.add(messageId); // the send (journey's bench sink does no more)
      // The click window: a delayed job, cancellable by its id.
      await checks.add('check', { contact }, { delay: WINDOW, jobId: `check-${contact}` });
      // Every even contact clicks at once, through ingestion (not awaited by this job).
      if (Number(contact.slice(1)) % 2 === 0) {
        const p = clicks.add('click', { contact, messageId, at: Date.now() });
        pendingClicks.add(p);
        p.finally(() => pendingClicks.delete(p));
      }
    },
    { connection, concurrency: CONCURRENCY, autorun: false },
  );

  const clickWorker = new Worker(
    'click',
    async (job) => {
      const { contact } = job.data;
      const key = `contact:${contact}`;
      const [[, took]] = await state.multi().hsetnx(key, 'branch', 'yes').hset(key, 'clicked_at', Date.now()).exec();
      if (took === 1) {
        branch();
        yes += 1;
        await checks.remove(`check-${contact}`); // cancel the timer (0 if it is running)
      } else {
        clicksLost += 1; // the check took `no` first
      }
    },
    { connection, concurrency: CONCURRENCY, autorun: false },
  );

  const checkWorker = new Worker(
    'check',
    async (job) => {
      const due = job.timestamp + (job.opts.delay ?? 0);
      fired.push(Date.now() - due);
      const took = await state.hsetnx(`contact:${job.data.contact}`, 'branch', 'no');
      if (took === 1) {
        durable.push(Date.now() - due);
        branch();
        no += 1;
      }
      return due;
    },
    { connection, concurrency: CONCURRENCY, autorun: false },
  );
  checkWorker.on('completed', (job, due) => completed.push(Date.now() - due));
  for (const w of [signupWorker, clickWorker, checkWorker]) w.on('failed', (job, err) => console.error('failed', job?.id, err));

  await Promise.all([signups, clicks, checks, signupWorker, clickWorker, checkWorker].map((x) => x.waitUntilReady()));
  signupWorker.run();
  clickWorker.run();
  checkWorker.run();
  await sleep(200);

  const cmdsBefore = Number(info(await state.info('stats'), 'total_commands_processed'));
  let maxNodeRss = process.memoryUsage.rss();
  const rssTimer = setInterval(() => { maxNodeRss = Math.max(maxNodeRss, process.memoryUsage.rss()); }, 100);

  const cpuBefore = process.cpuUsage();
  const redisCpu = () => {
    try {
      const f = readFileSync(`/proc/${redis.pid}/stat`, 'utf8').split(') ')[1].split(' ');
      return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in ticks of 10 ms
    } catch {
      return NaN;
    }
  };
  const redisCpuBefore = redisCpu();

  // The producer: signups in chunks of BATCH, IN_FLIGHT addBulk calls outstanding.
  const started = performance.now();
  let ingestedAt = 0;
  const producer = (async () => {
    const inflight = new Set();
    for (let from = 0; from < N; from += BATCH) {
      const jobs = [];
      for (let i = from; i < Math.min(N, from + BATCH); i++) jobs.push({ name: 'signup', data: { contact: `c${i}` } });
      const p = signups.addBulk(jobs);
      inflight.add(p);
      p.finally(() => inflight.delete(p));
      if (inflight.size >= IN_FLIGHT) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    ingestedAt = performance.now();
  })();

  const timeout = setTimeout(() => resolveDone('timeout'), TIMEOUT_MS);
  const outcome = await done;
  clearTimeout(timeout);
  await producer;
  await Promise.all(pendingClicks);
  clearInterval(rssTimer);
  maxNodeRss = Math.max(maxNodeRss, process.memoryUsage.rss());

  const wall = (lastBranch - started) / 1000;
  const rate = N / Math.max(wall - WINDOW / 1000, 0.001);
  const nodeCpuS = (({ user, system }) => (user + system) / 1e6)(process.cpuUsage(cpuBefore));
  const redisCpuS = redisCpu() - redisCpuBefore;
  const cmds = Number(info(await state.info('stats'), 'total_commands_processed')) - cmdsBefore;
  const commandstats = await state.info('commandstats');
  if (args.commandstats === 'true') console.error(commandstats);
  const scripts = ['evalsha', 'eval'].reduce((n, c) => n + Number(commandstats.match(new RegExp(`^cmdstat_${c}:calls=(\\d+)`, 'm'))?.[1] ?? 0), 0);
  const persistence = await state.info('persistence');
  const memory = await state.info('memory');
  const redisPeakRss = (() => {
    try {
      const m = readFileSync(`/proc/${redis.pid}/status`, 'utf8').match(/^VmHWM:\s+(\d+) kB/m);
      return m ? Number(m[1]) / 1024 : NaN;
    } catch {
      return NaN;
    }
  })();
  // Let the last check jobs' completions land before closing.
  await sleep(200);

  fired.sort((a, b) => a - b);
  durable.sort((a, b) => a - b);
  completed.sort((a, b) => a - b);
  const evenCount = Math.ceil(N / 2);
  const bullmqVersion = createRequire(import.meta.url)('bullmq/package.json').version;
  const r = {
    contacts: N,
    outcome: outcome === 'timeout' ? 'TIMEOUT' : 'ok',
    aof: `appendonly ${cfg.appendonly}${cfg.appendonly === 'yes' ? `, appendfsync ${cfg.appendfsync}` : ''}`,
    concurrency: CONCURRENCY,
    batch: BATCH,
    inFlight: IN_FLIGHT,
    windowMs: WINDOW,
    wallS: wall,
    ingestS: (ingestedAt - started) / 1000,
    rate,
    fired: { p50: percentile(fired, 0.5), p99: percentile(fired, 0.99), max: fired.at(-1) ?? 0, n: fired.length },
    durable: { p50: percentile(durable, 0.5), p99: percentile(durable, 0.99), max: durable.at(-1) ?? 0, n: durable.length },
    completed: { p50: percentile(completed, 0.5), p99: percentile(completed, 0.99), max: completed.at(-1) ?? 0, n: completed.length },
    yes, no, clicksLost, sent: sent.size, branched, evenCount,
    redisCommands: cmds,
    luaScripts: scripts,
    aofRewrites: Number(info(persistence, 'aof_rewrites') ?? 0),
    aofBytes: Number(info(persistence, 'aof_current_size') ?? 0),
    redisPeakRssMb: redisPeakRss,
    redisUsedMemoryPeakMb: Number(info(memory, 'used_memory_peak')) / 1048576,
    nodePeakRssMb: maxNodeRss / 1048576,
    nodeCpuS,
    redisCpuS,
    versions: { node: process.version, bullmq: bullmqVersion, redis: info(await state.info('server'), 'redis_version') },
  };

  await Promise.all([signupWorker.close(), clickWorker.close(), checkWorker.close()]);
  await Promise.all([signups.close(), clicks.close(), checks.close()]);
  await state.quit();
  redis.kill('SIGTERM');
  await new Promise((res) => (redisExited ? res() : redis.once('exit', res)));
  rmSync(dir, { recursive: true, force: true });

  if (JSON_OUT) {
    console.log(JSON.stringify(r));
    return;
  }
  const line = (k, v) => console.log(`${k.padEnd(26)}${v}`);
  line('contacts', `${N} (${r.outcome})`);
  line('redis', `${r.versions.redis}, ${r.aof}, RDB off`);
  line('bullmq / node', `${r.versions.bullmq} / ${r.versions.node}`);
  line('workers', `signup, click, check: concurrency ${CONCURRENCY} each; addBulk of ${BATCH}, ${IN_FLIGHT} in flight`);
  line('wall time', `${wall.toFixed(2)} s (first add → last branch); all signups queued after ${r.ingestS.toFixed(2)} s`);
  line('processing rate', `${rate.toFixed(0)} contacts/s  (N / (wall − ${WINDOW / 1000} s))`);
  line('check lateness, fired', `p50 ${r.fired.p50} ms, p99 ${r.fired.p99} ms, max ${r.fired.max} ms  (check job taken up − due; ${r.fired.n} fired)`);
  line('check lateness, branch', `p50 ${r.durable.p50} ms, p99 ${r.durable.p99} ms, max ${r.durable.max} ms  (\`no\` branch acknowledged − due)`);
  line('check lateness, done', `p50 ${r.completed.p50} ms, p99 ${r.completed.p99} ms, max ${r.completed.max} ms  (check job completed − due)`);
  line('clicks won / timeouts', `${yes} / ${no} (${clicksLost} clicks lost the race; ${r.evenCount} clicked)`);
  line('emails sent', `${r.sent}`);
  line('redis commands', `${cmds} (${(cmds / N).toFixed(1)} per contact, counting those run inside Lua scripts); ${scripts} BullMQ script calls (${(scripts / N).toFixed(2)} per contact)`);
  line('AOF', r.aofBytes ? `${(r.aofBytes / 1048576).toFixed(1)} MB at the end, ${r.aofRewrites} rewrite(s) during the run (Redis's default auto-aof-rewrite)` : 'off');
  line('CPU during the run', `node ${nodeCpuS.toFixed(1)} s, redis ${redisCpuS.toFixed(1)} s (of ${wall.toFixed(1)} s wall, 2 cores shared)`);
  line('peak RSS', `redis ${r.redisPeakRssMb.toFixed(0)} MB (used_memory_peak ${r.redisUsedMemoryPeakMb.toFixed(0)} MB), node ${r.nodePeakRssMb.toFixed(0)} MB`);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    if (redisProc && redisProc.exitCode === null) redisProc.kill('SIGTERM');
    process.exit(1);
  },
);
