// SPDX-License-Identifier: GPL-2.0-only
/**
 * The explorer's machinery: in-place snapshots, the per-step detectors on
 * synthetic scenarios (deadlock, page freed while mapped, WARN, oops),
 * schedule replay semantics, the throughput probe and the CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ChoiceStrategy, Machine, explore, formatTrace, runOnce, type Scenario } from '../src/explore/engine.js';
import { Snapshot } from '../src/explore/snapshot.js';
import { benchExplorer, measureSchedulesPerSecond } from '../src/bench/explorer.js';
import { Mutex } from '../src/kernel/sched/locks.js';
import { defineLockClass } from '../src/kernel/sched/lockdep.js';
import { folioPut } from '../src/kernel/mm/folio.js';
import { ADDR, anonMapping, cpuAccess, smallMachine } from '../scenarios/lib.js';

/* ------------------------------------------------------------------ */
/* snapshot                                                             */

test('snapshot restores objects, arrays, maps, sets and typed arrays in place', () => {
  class Thing {
    n = 1;
    arr: number[] = [1, 2, 3];
    child = { s: 'a', list: [{ v: 1 }] };
    ta = new Int32Array(4);
    m = new Map<string, number>([['x', 1]]);
    set = new Set<number>([1]);
  }
  const t = new Thing();
  const child = t.child;
  const inner = t.child.list[0];
  const ta = t.ta;
  const snap = new Snapshot([t]);
  t.n = 5;
  t.arr.push(4);
  t.arr[0] = 9;
  t.child.s = 'b';
  inner.v = 7;
  t.child.list.length = 0;
  ta[2] = 42;
  t.ta = new Int32Array(8); /* replaced: the old array comes back */
  t.m.set('y', 2);
  t.m.delete('x');
  t.set.add(2);
  (t as unknown as Record<string, unknown>).added = true;
  snap.restore();
  assert.equal(t.n, 1);
  assert.deepEqual(t.arr, [1, 2, 3]);
  assert.equal(t.child, child, 'identity preserved');
  assert.equal(t.child.s, 'a');
  assert.equal(t.child.list[0], inner);
  assert.equal(inner.v, 1);
  assert.equal(t.ta, ta);
  assert.deepEqual([...t.ta], [0, 0, 0, 0]);
  assert.deepEqual([...t.m], [['x', 1]]);
  assert.deepEqual([...t.set], [1]);
  assert.equal('added' in t, false, 'a property added after the snapshot is deleted');
  assert.ok(snap.stats().objects >= 3);
});

test('snapshot refuses a live generator', () => {
  function* g(): Generator<number> {
    yield 1;
  }
  assert.throws(() => new Snapshot([{ it: g() }]), /live generator/);
});

/* ------------------------------------------------------------------ */
/* detectors on synthetic scenarios                                     */

function synthetic(name: string, threads: (k: ReturnType<typeof smallMachine>) => Array<{ name: string; body: () => Generator<never, unknown, void> | ReturnType<typeof cpuAccess> }>): Scenario {
  return {
    name, description: name, seedRef: 'test', bugSwitch: 'none', expect: '',
    setup(cfg) {
      const k = smallMachine(cfg);
      return { k, threads: threads(k) as never };
    },
  };
}

test('DEADLOCK: two threads taking two locks in opposite orders', () => {
  const sc: Scenario = {
    name: 'abba', description: 'abba', seedRef: 'test', bugSwitch: 'none', expect: 'DEADLOCK',
    setup(cfg) {
      const k = smallMachine(cfg);
      const s = k.sched;
      // This test is about the explorer's DEADLOCK detector: lockdep (checked
      // mode) would report the A-B / B-A order before the deadlock happens
      // (test/lockdep.test.ts shows that), so it is off for this machine.
      s.lockdep = null;
      const a = new Mutex('A', defineLockClass(100, 'A', null, 'sleep'));
      const b = new Mutex('B', defineLockClass(101, 'B', null, 'sleep'));
      const locks = { a, b };
      const th = (x: Mutex, y: Mutex) => function* () {
        yield* x.lock(s);
        yield* y.lock(s);
        y.unlock(s);
        x.unlock(s);
      };
      return { k, roots: [locks], threads: [{ name: 'ab', body: th(a, b) }, { name: 'ba', body: th(b, a) }] };
    },
  };
  const r = explore(sc, { schedules: 200, seed: 1, strategy: 'random', config: {} });
  assert.ok(r.found);
  assert.equal(r.found.violation!.detector, 'DEADLOCK');
  assert.match(formatTrace(r.found), /waits in lock B[\s\S]*waits in lock A|waits in lock A[\s\S]*waits in lock B/);
  // Non-preemptive order: no deadlock.
  assert.equal(runOnce(sc, {}, []).violation, null);
});

test('per-step INVARIANT: a page freed while a PTE still maps it is caught at that step', () => {
  const sc: Scenario = {
    name: 'bad-put', description: 'bad put', seedRef: 'test', bugSwitch: 'none', expect: 'INVARIANT',
    setup(cfg) {
      const k = smallMachine(cfg);
      const { mm } = anonMapping(k, 1);
      const s = k.sched;
      return {
        k,
        threads: [{
          name: 'buggy',
          *body() {
            const pfn = yield* cpuAccess(mm, ADDR, true);
            // A broken unmap path: the rmap is dropped, the PTE is left, the page freed.
            k.lru.drain(); /* the LRU batch's reference goes first */
            k.pages.mapcount[pfn] = 0;
            folioPut(k, pfn);
            yield s.point('after the bad put', pfn);
            yield s.point('later', pfn);
          },
        }],
      };
    },
  };
  const r = runOnce(sc, {}, []);
  assert.equal(r.violation?.detector, 'INVARIANT');
  assert.match(r.violation!.rule, /page freed while mapped/);
  assert.equal(r.trace[r.trace.length - 1].what, 'after the bad put', 'stopped at the step of the free, not at the end');
});

test('WARN and OOPS detectors; a schedule replays past its end with choice 0', () => {
  const warn = synthetic('warn', (k) => [{ name: 'w', *body() { k.printk.warn('something odd'); yield k.sched.point('after warn') as never; } }]);
  const r = runOnce(warn, {}, []);
  assert.equal(r.violation?.detector, 'WARN');
  assert.equal(r.violation?.rule, 'something odd');
  const oops = synthetic('oops', () => [{ name: 'o', *body() { const x = null as unknown as { f: number }; return x.f; } }]);
  const o = runOnce(oops, {}, []);
  assert.equal(o.violation?.detector, 'OOPS');
  assert.match(o.violation!.rule, /TypeError/);
  assert.match(formatTrace(o), /OOPS raised here/);
});

test('relative choices: 0 keeps the running thread, 1 switches; trailing zeros are trimmed', () => {
  const sc: Scenario = {
    name: 'pingpong', description: '', seedRef: 'test', bugSwitch: 'none', expect: '',
    setup(cfg) {
      const k = smallMachine(cfg);
      const s = k.sched;
      const body = () => function* () {
        yield s.point('one');
        yield s.point('two');
      };
      return { k, threads: [{ name: 'a', body: body() }, { name: 'b', body: body() }] };
    },
  };
  const m = new Machine(sc, {});
  const seq = (r: ReturnType<Machine['runSchedule']>) => r.trace.map((t) => `${t.taskName}:${t.what}`);
  assert.deepEqual(seq(m.runSchedule(new ChoiceStrategy([]))), ['a:one', 'a:two', 'a:exit', 'b:one', 'b:two', 'b:exit']);
  const r = m.runSchedule(new ChoiceStrategy([0, 1, 1, 0, 0, 0, 0]));
  assert.deepEqual(seq(r), ['a:one', 'b:one', 'a:two', 'a:exit', 'b:two', 'b:exit']);
  assert.deepEqual(r.schedule, [0, 1, 1], 'the recorded schedule, trailing zeros trimmed');
  assert.deepEqual(seq(m.runSchedule(new ChoiceStrategy(r.schedule))), seq(r));
});

test('measureSchedulesPerSecond / benchExplorer run the CVE scenario on mainline', () => {
  const b = benchExplorer('cve-2022-3523', 300);
  assert.equal(b.schedules, 300);
  assert.ok(b.schedulesPerSecond > 0 && b.schedulesPerCpuSecond > 0);
  assert.ok(measureSchedulesPerSecond('cve-2022-3523', 100) > 0);
  assert.throws(() => benchExplorer('no-such-scenario', 10), /unknown scenario/);
});

/* ------------------------------------------------------------------ */
/* CLI                                                                  */

const BIN = fileURLToPath(new URL('../../bin/hmmsim.js', import.meta.url));

/** Run the CLI in this process, capturing stdout and stderr. */
async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const { main } = await import('../src/cli/main.js');
  let out = '';
  let err = '';
  const ow = process.stdout.write;
  const ew = process.stderr.write;
  process.stdout.write = ((c: string | Uint8Array) => ((out += String(c)), true)) as typeof process.stdout.write;
  process.stderr.write = ((c: string | Uint8Array) => ((err += String(c)), true)) as typeof process.stderr.write;
  try {
    const code = await main(args);
    return { code, out, err };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
}

test('CLI: explore --list, a violation (exit 1) with replay, nothing found (exit 0), usage errors (exit 2)', async () => {
  const list = await cli('explore', '--list');
  assert.equal(list.code, 0);
  assert.match(list.out, /^cve-2022-3523 +fault_no_page_ref /m);
  assert.match(list.out, /^gup-fast-longterm-coherent +gup_fast_longterm_coherent /m);

  const found = await cli('explore', 'cve-2022-3523', '--config', 'fault_no_page_ref=on', '--json');
  assert.equal(found.code, 1);
  const j = JSON.parse(found.out);
  assert.equal(j.violation.detector, 'KASAN');
  assert.match(j.replay, /^hmmsim explore cve-2022-3523 --config fault_no_page_ref=on --schedule [\d,]+$/);
  assert.ok(Array.isArray(j.trace) && j.trace.length > 0);

  const replay = await cli('explore', 'cve-2022-3523', '--config', 'fault_no_page_ref=on', '--schedule', j.schedule.join(','));
  assert.equal(replay.code, 1);
  assert.match(replay.out, /KASAN: use-after-free in do_swap_page/);

  const clean = await cli('explore', 'cve-2022-3523', '--schedules', '200');
  assert.equal(clean.code, 0);
  assert.match(clean.out, /no violation in 200 schedules/);

  const bad = await cli('explore', 'no-such-scenario');
  assert.equal(bad.code, 2);
  assert.match(bad.err, /unknown scenario 'no-such-scenario'/);
  const badSwitch = await cli('explore', 'cve-2022-3523', '--config', 'no_such_switch=on');
  assert.equal(badSwitch.code, 2);
  assert.match(badSwitch.err, /unknown config name 'no_such_switch'/);
  const badN = await cli('explore', 'cve-2022-3523', '--schedules', 'many');
  assert.equal(badN.code, 2);
});

test('CLI binary: the exit status of a found violation is 1', () => {
  const r = spawnSync(process.execPath, [BIN, 'explore', 'release-without-eviction', '--config', 'release_without_eviction=on'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stdout, /HANG after 1 schedule\(s\)/);
  assert.match(r.stdout, /^replay: hmmsim explore release-without-eviction --config release_without_eviction=on --schedule/m);
});
