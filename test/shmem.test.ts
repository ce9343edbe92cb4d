// SPDX-License-Identifier: GPL-2.0-only
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { System, pagemapEntry, PM_FILE, PM_PRESENT } from '../src/user/system.js';
import { type Process } from '../src/user/process.js';
import { PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, MAP_SHARED_VALIDATE, MAP_SYNC } from '../src/kernel/mm/mmap.js';
import { O_RDONLY, O_RDWR, O_TMPFILE, O_WRONLY } from '../src/kernel/fs/chardev.js';
import { MADV_DONTNEED } from '../src/kernel/mm/madvise.js';
import { EACCES, EBADF, EINVAL, EOPNOTSUPP, ENOENT } from '../src/kernel/errno.js';

const RW = PROT_READ | PROT_WRITE;
const PG = 4096;

function setup(): { s: System; p: Process } {
  const s = new System({ ramBytes: 256 << 20, checked: true });
  return { s, p: s.spawn('t') };
}

function tmpfile(p: Process, size: number): number {
  const fd = p.open('/tmp', O_TMPFILE | O_RDWR, 0o600);
  assert.ok(fd >= 0);
  assert.equal(p.ftruncate(fd, size), 0);
  return fd;
}

test('tmpfs: open errors', () => {
  const { p } = setup();
  assert.equal(p.open('/tmp', O_TMPFILE | O_RDONLY), -EINVAL, 'O_TMPFILE needs write access');
  assert.equal(p.open('/nonexistent', O_RDWR), -ENOENT);
  assert.equal(p.close(77), -EBADF);
  const fd = tmpfile(p, PG);
  assert.equal(p.ftruncate(fd, -1), -EINVAL);
  assert.equal(p.pread(fd, 0, 1, -1), -EINVAL);
  assert.equal(p.close(fd), 0);
  assert.equal(p.close(fd), -EBADF);
});

test('tmpfs: pwrite/pread through user buffers, holes read as zero', () => {
  const { p } = setup();
  const fd = tmpfile(p, 0);
  const buf = p.malloc(3 * PG);
  p.fill(buf, 100, 0x41);
  assert.equal(p.pwrite(fd, buf, 100, PG + 10), 100);
  p.fill(buf, 3 * PG, 0xff);
  assert.equal(p.pread(fd, buf, 3 * PG, 0), PG + 110, 'short read at EOF');
  assert.equal(p.load8(buf), 0, 'hole');
  assert.equal(p.load8(buf + PG + 10), 0x41);
  assert.equal(p.load8(buf + PG + 109), 0x41);
  assert.equal(p.pread(fd, buf, 10, 10 * PG), 0, 'beyond EOF');
  assert.equal(p.read(fd, buf, 5), 5, 'read() advances f_pos');
  assert.equal(p.read(fd, buf, PG + 200), PG + 105);
});

test('tmpfs MAP_SHARED: stores are visible through pread and vice versa', () => {
  const { s, p } = setup();
  const fd = tmpfile(p, 2 * PG);
  const a = p.mmap(0, 2 * PG, RW, MAP_SHARED, fd, 0);
  assert.ok(a > 0);
  p.store32(a + PG, 0x12345678);
  assert.equal(p.mm!.rss.shmem, 1);
  assert.ok(pagemapEntry(p.mm!, a + PG) & PM_FILE);
  const buf = p.malloc(PG);
  assert.equal(p.pread(fd, buf, 4, PG), 4);
  assert.equal(p.load32(buf), 0x12345678);
  p.store32(buf, 77);
  assert.equal(p.pwrite(fd, buf, 4, 0), 4);
  assert.equal(p.load32(a), 77);
  // Mapping at an offset.
  const b = p.mmap(0, PG, PROT_READ, MAP_SHARED, fd, PG);
  assert.equal(p.load32(b), 0x12345678);
  assert.equal(s.kernel.pages.mapcount[Number(pagemapEntry(p.mm!, b) & ((1n << 55n) - 1n))], 2);
  // MADV_DONTNEED drops the mapping, not the data.
  assert.equal(p.madvise(a, 2 * PG, MADV_DONTNEED), 0);
  assert.equal(pagemapEntry(p.mm!, a + PG) & PM_PRESENT, 0n);
  assert.equal(p.load32(a + PG), 0x12345678);
});

test('tmpfs MAP_PRIVATE: a write is a private COW copy; the file is unchanged', () => {
  const { p } = setup();
  const fd = tmpfile(p, PG);
  const buf = p.malloc(PG);
  p.store32(buf, 5);
  assert.equal(p.pwrite(fd, buf, 4, 0), 4);
  const a = p.mmap(0, PG, RW, MAP_PRIVATE, fd, 0);
  assert.equal(p.load32(a), 5);
  assert.ok(pagemapEntry(p.mm!, a) & PM_FILE, 'read maps the page cache page');
  p.store32(a, 6);
  assert.equal(pagemapEntry(p.mm!, a) & PM_FILE, 0n, 'now an anonymous copy');
  assert.equal(p.load32(a), 6);
  assert.equal(p.pread(fd, buf, 4, 0), 4);
  assert.equal(p.load32(buf), 5, 'file unchanged');
  // pwrite after the COW is not seen by the private copy.
  p.store32(buf, 9);
  p.pwrite(fd, buf, 4, 0);
  assert.equal(p.load32(a), 6);
});

test('tmpfs: permissions (EACCES), MAP_SHARED_VALIDATE (EOPNOTSUPP)', () => {
  const { p } = setup();
  const fd = tmpfile(p, PG);
  const ro = p.open(`/proc/self/fd/${fd}`, O_RDONLY);
  assert.ok(ro >= 0);
  assert.equal(p.mmap(0, PG, RW, MAP_SHARED, ro, 0), -EACCES);
  const a = p.mmap(0, PG, PROT_READ, MAP_SHARED, ro, 0);
  assert.ok(a > 0);
  assert.equal(p.mprotect(a, PG, RW), -EACCES, 'no VM_MAYWRITE');
  // A private writable mapping of a read-only fd is fine (COW).
  assert.ok(p.mmap(0, PG, RW, MAP_PRIVATE, ro, 0) > 0);
  const wo = p.open(`/proc/self/fd/${fd}`, O_WRONLY);
  assert.equal(p.mmap(0, PG, PROT_READ, MAP_PRIVATE, wo, 0), -EACCES, 'not open for reading');
  assert.equal(p.pwrite(ro, a, 4, 0), -EBADF);
  assert.equal(p.mmap(0, PG, RW, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0), -EOPNOTSUPP);
  assert.ok(p.mmap(0, PG, RW, MAP_SHARED | MAP_SYNC, fd, 0) > 0, 'MAP_SHARED ignores unknown flags');
});

test('tmpfs: ftruncate shrink unmaps; access beyond EOF is SIGBUS', () => {
  const { s, p } = setup();
  const k = s.kernel;
  const fd = tmpfile(p, 3 * PG);
  const a = p.mmap(0, 3 * PG, RW, MAP_SHARED, fd, 0);
  const pv = p.mmap(0, 3 * PG, RW, MAP_PRIVATE, fd, 0);
  p.fill(a, 3 * PG, 7);
  p.store8(pv + 2 * PG, 1); /* private COW copy beyond the future EOF */
  assert.equal(p.ftruncate(fd, PG + 100), 0);
  assert.equal(p.load8(a + PG + 99), 7);
  assert.equal(p.load8(a + PG + 100), 0, 'tail of the partial page zeroed');
  assert.equal(p.mm!.rss.anon, 0, 'private COW copy beyond EOF dropped too (even_cows)');
  const pid = p.fork((c) => {
    c.load8(a + 2 * PG);
  });
  assert.equal(p.waitpid(pid).status & 0x7f, 7, 'SIGBUS');
  const pid2 = p.fork((c) => {
    c.load8(pv + 2 * PG);
  });
  assert.equal(p.waitpid(pid2).status & 0x7f, 7, 'SIGBUS through the private mapping too');
  // Growing again: zero pages.
  assert.equal(p.ftruncate(fd, 3 * PG), 0);
  assert.equal(p.load8(a + 2 * PG), 0);
  void k;
});

test('tmpfs: the inode lives while mapped, and is freed at last unmap+close', () => {
  const { s, p } = setup();
  const k = s.kernel;
  const free0 = k.buddy.nrFree;
  const fd = tmpfile(p, 4 * PG);
  const a = p.mmap(0, 4 * PG, RW, MAP_SHARED, fd, 0);
  p.fill(a, 4 * PG, 3);
  assert.equal(p.close(fd), 0);
  assert.equal(p.load8(a + 3 * PG), 3, 'still mapped after close');
  assert.equal(p.munmap(a, 4 * PG), 0);
  k.lru.drain();
  assert.equal(k.buddy.nrFree, free0);
});

test('shared anonymous memory is a shmem object', () => {
  const { p } = setup();
  const a = p.mmap(0, 2 * PG, RW, MAP_SHARED | MAP_ANONYMOUS);
  p.store32(a, 1);
  assert.equal(p.mm!.rss.shmem, 1);
  assert.ok(pagemapEntry(p.mm!, a) & PM_FILE);
});
