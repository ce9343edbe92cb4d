// SPDX-License-Identifier: GPL-2.0-only
/**
 * The simulated C library behaves like glibc where a program can see it:
 * the brk heap (free() does not unmap, addresses are reused), mmap above
 * the threshold with the dynamic threshold, brk(2) itself, the stack VMA,
 * tmpfs names, stdio.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { System } from '../src/user/system.js';
import { ProcessSignal, SIGABRT, WIFSIGNALED, WTERMSIG } from '../src/user/process.js';
import {
  Libc, MAP_ANONYMOUS, MAP_FAILED, MAP_FIXED, MAP_PRIVATE, NULL, O_CREAT, O_EXCL, O_RDONLY, O_RDWR, PROT_READ, PROT_WRITE,
} from '../src/user/libc.js';
import { mmuNotifierRegister, MMU_NOTIFY_EVENT_NAMES, type MmuNotifierRange } from '../src/kernel/mm/mmu_notifier.js';
import type { K } from '../src/kernel/sched/sched.js';
import { EEXIST, EINVAL, ENOENT } from '../src/kernel/errno.js';

const PG = 4096;
const RW = PROT_READ | PROT_WRITE;

function machine(stdio?: (fd: number, t: string) => void) {
  const sys = new System({ ramBytes: 256 << 20, checked: true });
  const p = sys.spawn('prog', { stdio });
  const lc = new Libc(p);
  // Every invalidation of the process's address space, as a driver mirroring it would see it.
  const events: Array<{ event: string; start: number; end: number }> = [];
  mmuNotifierRegister(p.mm!, {
    *invalidateRangeStart(r: MmuNotifierRange): K<number> {
      events.push({ event: MMU_NOTIFY_EVENT_NAMES[r.event], start: r.start, end: r.end });
      return 0;
    },
  });
  return { sys, p, lc, events };
}

test('libc: small buffers next to a range under test come from the brk heap; free() does not unmap and malloc() reuses them', () => {
  const { p, lc, events } = machine();
  // The range under test, as a ported C test maps it.
  const range = lc.mmap(NULL, 64 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert.notEqual(range, MAP_FAILED);
  lc.memset(range, 0x5a, 64 * PG);
  const sizes = [16, 40, 100, 512, 1000, 3000, 8192, 20000];
  const first = sizes.map((n) => lc.malloc(n));
  const mm = p.mm!;
  for (const a of first) {
    assert.ok(a >= mm.startBrk && a < mm.brk, `0x${a.toString(16)} is in the heap [0x${mm.startBrk.toString(16)}, 0x${mm.brk.toString(16)})`);
    assert.equal(a % 16, 0, 'malloc alignment is 16');
    assert.ok(a + 100000 < range, 'the heap is far below the mmap area');
  }
  assert.equal(new Set(first).size, sizes.length);
  for (const a of first) lc.free(a);
  const second = sizes.map((n) => lc.malloc(n));
  assert.deepEqual([...second].sort((x, y) => x - y), [...first].sort((x, y) => x - y), 'the same heap addresses come back');
  // glibc's tcache is LIFO per size: the same size gets the same chunk.
  assert.equal(second[0], first[0]);
  assert.equal(events.filter((e) => e.event === 'UNMAP').length, 0, `no munmap anywhere: ${JSON.stringify(events)}`);
  assert.equal(events.length, 0, 'no invalidation at all: the range under test is untouched');
  const st = lc.mallinfo();
  assert.equal(st.munmapCalls, 0);
  assert.equal(st.mmapCalls, 0);
  assert.equal(st.arena, 33 * PG, 'one sbrk: M_TOP_PAD (128 KiB) + the first requests, page aligned: the familiar 132 KiB [heap]');
  assert.match(p.readFileText('/proc/self/maps') as string, /^555555559000-55555557a000 rw-p 00000000 00:00 0 \[heap\]$/m);
  assert.equal(p.load32(range + 5 * PG), 0x5a5a5a5a, 'the range under test kept its data');
});

test('libc: a large malloc is mmapped and unmapped by free; freeing it raises the dynamic mmap threshold', () => {
  const { p, lc, events } = machine();
  const big = lc.malloc(256 * 1024);
  const mm = p.mm!;
  assert.ok(big > mm.brk, 'above the mmap threshold: its own mapping');
  assert.equal((big - 16) % PG, 0, 'the user pointer is 16 bytes into the mapping');
  const vma = mm.vmaLookup(big)!;
  assert.equal(vma.start, big - 16);
  assert.equal(vma.end - vma.start, 65 * PG, 'request + 8-byte header, page aligned');
  lc.free(big);
  assert.deepEqual(events, [{ event: 'UNMAP', start: big - 16, end: big - 16 + 65 * PG }]);
  assert.equal(mm.vmaLookup(big), null);
  const st = lc.mallinfo();
  assert.equal(st.mmapThreshold, 65 * PG, 'the threshold follows the freed chunk (glibc dynamic threshold)');
  assert.equal(st.trimThreshold, 2 * 65 * PG);
  // 200 KiB is now below the threshold: it comes from the heap.
  const again = lc.malloc(200 * 1024);
  assert.ok(again >= mm.startBrk && again < mm.brk, 'served by brk now');
  // mmap placement is top-down (get_unmapped_area): a freed mmapped chunk's place is the next one's.
  const m1 = lc.malloc(40 << 20);
  lc.free(m1);
  assert.equal(lc.malloc(40 << 20), m1, 'munmap + mmap of the same size: the same address, as on Linux');
  // A 64 MiB chunk is above DEFAULT_MMAP_THRESHOLD_MAX: freeing it leaves the threshold alone.
  const huge = lc.malloc(64 << 20);
  assert.ok(huge > mm.brk);
  lc.free(huge);
  assert.equal(lc.mallinfo().mmapThreshold, 65 * PG);
});

test('libc: calloc zeroes, realloc keeps the data (in place, moved, and by mremap), posix_memalign aligns', () => {
  const { p, lc } = machine();
  const a = lc.malloc(64);
  lc.memset(a, 0xee, 64);
  lc.free(a);
  const z = lc.calloc(8, 8);
  assert.equal(z, a, 'the freed chunk is reused');
  assert.deepEqual([...lc.readBytes(z, 64)], new Array(64).fill(0), 'calloc cleared the reused chunk');
  lc.memset(z, 7, 64);
  const g = lc.realloc(z, 40);
  assert.equal(g, z, 'shrinking stays in place');
  const grown = lc.realloc(g, 5000);
  assert.deepEqual([...lc.readBytes(grown, 40)], new Array(40).fill(7));
  const big = lc.malloc(1 << 20);
  lc.store32(big + 12345 * 4, 42);
  const moved = lc.realloc(big, 8 << 20);
  assert.equal(lc.mallinfo().mremapCalls, 1, 'an mmapped chunk grows by mremap(MREMAP_MAYMOVE)');
  assert.equal(lc.load32(moved + 12345 * 4), 42);
  assert.equal(lc.realloc(moved, 0), NULL, 'realloc(p, 0) frees');
  const slot = lc.malloc(8);
  assert.equal(lc.posix_memalign(slot, 4096, 100), 0);
  const al = Number(lc.readU64(slot));
  assert.equal(al % 4096, 0);
  assert.ok(al >= p.mm!.startBrk && al < p.mm!.brk, 'a small aligned block is on the heap');
  assert.equal(lc.posix_memalign(slot, 12, 100), EINVAL);
  assert.equal(lc.posix_memalign(slot, 4, 100), EINVAL, 'not a multiple of sizeof(void *)');
  lc.free(al);
});

test('libc: free of a pointer malloc did not return, or a double free, aborts with SIGABRT', () => {
  const { sys, lc } = machine();
  const parent = sys.spawn('parent');
  const plc = new Libc(parent);
  const pid = plc.fork((c) => {
    const x = c.malloc(32);
    c.free(x);
    c.free(x);
  });
  const [r, status] = plc.waitpid(pid);
  assert.equal(r, pid);
  assert.equal(WIFSIGNALED(status), true);
  assert.equal(WTERMSIG(status), SIGABRT);
  assert.throws(() => lc.free(0x1234), (e: unknown) => e instanceof ProcessSignal && e.signo === SIGABRT);
});

test('brk(2): grows the heap VMA, shrinks it with an UNMAP notification, refuses to run into a mapping', () => {
  const { p, events } = machine();
  const mm = p.mm!;
  const b0 = p.brk(0);
  assert.equal(b0, 0x555555559000);
  assert.equal(p.brk(b0 - PG), b0, 'below start_brk: unchanged');
  assert.equal(p.brk(b0 + 3 * PG + 5), b0 + 3 * PG + 5);
  const vma = mm.vmaLookup(b0)!;
  assert.equal(vma.end, b0 + 4 * PG, 'PAGE_ALIGN(brk)');
  p.store32(b0 + 3 * PG, 9);
  assert.equal(p.brk(b0 + 6 * PG), b0 + 6 * PG);
  assert.equal(mm.vmas.filter((v) => v.start >= b0 && v.start < b0 + 6 * PG).length, 1, 'the heap VMA was expanded, not joined by a second one');
  assert.equal(events.length, 0, 'growing the heap notifies nobody');
  assert.equal(p.brk(b0 + PG), b0 + PG);
  assert.deepEqual(events, [{ event: 'UNMAP', start: b0 + PG, end: b0 + 6 * PG }]);
  assert.equal(mm.vmaLookup(b0 + 3 * PG), null);
  // A mapping just above the break stops it growing (a page must stay free).
  const m = p.mmap(b0 + 8 * PG, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
  assert.equal(m, b0 + 8 * PG);
  assert.equal(p.brk(b0 + 7 * PG), b0 + 7 * PG);
  assert.equal(p.brk(b0 + 8 * PG), b0 + 7 * PG, 'refused: the break stays');
  const lc = new Libc(p);
  assert.equal(lc.sbrk(PG * 100), -1);
  assert.equal(lc.sbrk(0), b0 + 7 * PG);
});

test('libc: the stack is a VMA at the top of the address space; fork copies heap and stack', () => {
  const { p, lc } = machine();
  const frame = lc.stack(64);
  const mm = p.mm!;
  assert.ok(frame < mm.taskSize && frame >= mm.taskSize - 132 * 1024);
  assert.match(p.readFileText('/proc/self/maps') as string, /7ffffffde000-7ffffffff000 rw-p .* \[stack\]/);
  const keep = lc.malloc(100);
  lc.store32(keep, 1234);
  lc.store32(frame, 77);
  const pid = lc.fork((c) => {
    const mine = c.malloc(100);
    if (mine === keep) c._exit(3);
    if (c.load32(keep) !== 1234 || c.load32(c.stack(4)) !== 77) c._exit(4);
    c.free(keep);
    c._exit(0);
  });
  const [, st] = lc.waitpid(pid);
  assert.equal(st, 0, 'child saw the parent heap and stack; its own malloc did not return a live parent chunk');
  assert.equal(lc.load32(keep), 1234);
});

test('libc: named tmpfs files: O_CREAT, O_EXCL, unlink, mkstemp', () => {
  const { lc } = machine();
  const buf = lc.malloc(64);
  lc.strcpy(buf, 'hello');
  const fd = lc.open('/tmp/data', O_RDWR | O_CREAT, 0o644);
  assert.ok(fd >= 3);
  assert.equal(lc.pwrite(fd, buf, 5, 0), 5);
  assert.equal(lc.close(fd), 0);
  assert.equal(lc.open('/tmp/data', O_RDWR | O_CREAT | O_EXCL, 0o644), -1);
  assert.equal(lc.errno, EEXIST);
  const fd2 = lc.open('/tmp/data', O_RDONLY);
  assert.equal(lc.unlink('/tmp/data'), 0);
  assert.equal(lc.open('/tmp/data', O_RDONLY), -1);
  assert.equal(lc.errno, ENOENT);
  lc.memset(buf, 0, 8);
  assert.equal(lc.pread(fd2, buf, 5, 0), 5, 'an unlinked file lives while open');
  assert.equal(lc.cstring(buf), 'hello');
  lc.close(fd2);
  const t1 = lc.stack(64);
  lc.strcpy(t1, '/tmp/hmmXXXXXX');
  const tfd = lc.mkstemp(t1);
  assert.ok(tfd >= 0);
  const name = lc.cstring(t1);
  assert.match(name, /^\/tmp\/hmm[A-Za-z0-9]{6}$/);
  assert.notEqual(name, '/tmp/hmmXXXXXX');
  lc.strcpy(t1, '/tmp/hmmXXXXXX');
  const tfd2 = lc.mkstemp(t1);
  assert.notEqual(lc.cstring(t1), name, 'a second mkstemp gets another name');
  assert.equal(lc.unlink(name), 0);
  lc.close(tfd);
  lc.close(tfd2);
  lc.strcpy(t1, '/tmp/bad');
  assert.equal(lc.mkstemp(t1), -1);
  assert.equal(lc.errno, EINVAL);
});

test('libc: printf goes through a malloc()ed stdio buffer and write(1)', () => {
  const out: string[] = [];
  const { lc } = machine((fd, t) => out.push(`${fd}:${t}`));
  assert.equal(lc.printf('%d %5s|%-3x|%08.3f', -12, 'ab', 255, 0), '-12    ab|ff |%08.3f'.length);
  assert.deepEqual(out, [], 'no newline yet: still buffered');
  lc.printf(' %p %lu\n', 0x1000, 2n ** 63n);
  assert.deepEqual(out, ['1:-12    ab|ff |%08.3f 0x1000 9223372036854775808\n']);
  lc.errno = ENOENT;
  lc.perror('open');
  assert.equal(out[1], '2:open: ENOENT\n');
});
