// SPDX-License-Identifier: GPL-2.0-only
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { System, pagemapEntry, PM_PRESENT, PM_PFRAME_MASK, PM_MMAP_EXCLUSIVE } from '../src/user/system.js';
import { type Process, WIFEXITED, WEXITSTATUS } from '../src/user/process.js';
import { PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS } from '../src/kernel/mm/mmap.js';
import { MADV_DONTFORK, MADV_WIPEONFORK } from '../src/kernel/mm/madvise.js';
import { PG_anon_exclusive, GUP_PIN_COUNTING_BIAS, HPAGE_PMD_NR } from '../src/kernel/mm/page.js';
import { pmdTableOf, pmdIndex, pteIndex, T_PRESENT, _PAGE_RW, T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE, T_MIGRATION_READ, T_MIGRATION_WRITE, pteType } from '../src/kernel/mm/pgtable.js';
import { runSync } from '../src/kernel/sched/sched.js';
import { pinUserPagesFast, unpinUserPage, FOLL_WRITE, FOLL_LONGTERM } from '../src/kernel/mm/gup.js';
import { MmuIntervalNotifier, mmuIntervalNotifierInsert, MMU_NOTIFY_PROTECTION_PAGE, MMU_NOTIFY_RELEASE } from '../src/kernel/mm/mmu_notifier.js';
import { dupMmap, mmput } from '../src/kernel/mm/fork.js';

const RW = PROT_READ | PROT_WRITE;
const PA = MAP_PRIVATE | MAP_ANONYMOUS;
const PG = 4096;

function setup(cfg = {}): { s: System; p: Process } {
  const s = new System({ ramBytes: 256 << 20, checked: true, ...cfg });
  return { s, p: s.spawn('parent') };
}
function pfnOf(p: Process, addr: number): number {
  const e = pagemapEntry(p.mm!, addr);
  return e & PM_PRESENT ? Number(e & PM_PFRAME_MASK) : -1;
}
function pteF(p: Process, addr: number): number {
  return pmdTableOf(p.mm!.pgd, addr, false)!.pte[pmdIndex(addr)]!.f[pteIndex(addr)];
}

test('fork: COW shares the page read-only, clears PG_anon_exclusive, child write copies', () => {
  const { s, p } = setup();
  const k = s.kernel;
  const a = p.mmap(0, PG, RW, PA);
  p.store32(a, 1234);
  const pfn = pfnOf(p, a);
  assert.ok(k.pages.flags[pfn] & PG_anon_exclusive);
  const events: number[] = [];
  mmuIntervalNotifierInsert(new MmuIntervalNotifier(p.mm!, 0, 2 ** 47, { *invalidate(_s, r) { events.push(r.event); return true; } }));
  let childPfn = -1;
  let childMapcount = -1;
  const pid = p.fork((c) => {
    assert.equal(pfnOf(c, a), pfn, 'child maps the same page');
    childMapcount = k.pages.mapcount[pfn];
    assert.equal(c.load32(a), 1234);
    c.store32(a, 5);
    childPfn = pfnOf(c, a);
    c.exit(0);
  });
  assert.ok(events.includes(MMU_NOTIFY_PROTECTION_PAGE));
  assert.equal(childMapcount, 2);
  assert.notEqual(childPfn, pfn, 'child write broke COW');
  const st = p.waitpid(pid);
  assert.ok(WIFEXITED(st.status));
  assert.equal(WEXITSTATUS(st.status), 0);
  assert.equal(k.pages.mapcount[pfn], 1, 'child gone');
  assert.equal(pteF(p, a) & _PAGE_RW, 0, 'parent PTE write-protected by fork');
  assert.equal(k.pages.flags[pfn] & PG_anon_exclusive, 0);
  // Parent write after the child exited: the page is reused (no copy).
  p.store32(a, 99);
  assert.equal(pfnOf(p, a), pfn);
  assert.ok(k.pages.flags[pfn] & PG_anon_exclusive, 'exclusive again after reuse');
  assert.equal(p.load32(a), 99);
});

test('fork: while the child lives the parent write copies, child keeps the old data', () => {
  const { s, p } = setup();
  const k = s.kernel;
  const a = p.mmap(0, 2 * PG, RW, PA);
  p.store32(a, 1);
  const pfn = pfnOf(p, a);
  const box: { c: Process | null } = { c: null };
  const pid = p.fork((c) => {
    box.c = c;
  });
  const child = box.c as Process | null;
  assert.ok(child !== null);
  assert.equal(pagemapEntry(p.mm!, a) & PM_MMAP_EXCLUSIVE, 0n, 'shared: not exclusively mapped');
  p.store32(a, 2);
  assert.notEqual(pfnOf(p, a), pfn, 'parent got a copy');
  assert.equal(child!.load32(a), 1);
  assert.equal(pfnOf(child!, a), pfn);
  assert.equal(k.pages.mapcount[pfn], 1);
  assert.equal(p.mm!.rss.anon, 1);
  assert.equal(child!.mm!.rss.anon, 1);
  assert.equal(p.kill(pid, 9), 0);
  assert.equal(p.waitpid(pid).status & 0x7f, 9);
});

test('fork: a pinned exclusive page is copied for the child at fork time', () => {
  const { s, p } = setup();
  const k = s.kernel;
  const a = p.mmap(0, 2 * PG, RW, PA);
  p.store32(a, 11);
  p.store32(a + PG, 22);
  const pages = new Float64Array(1);
  assert.equal(runSync(k.sched, pinUserPagesFast(p.mm!, a, 1, FOLL_WRITE | FOLL_LONGTERM, pages)), 1);
  const pfn = pages[0];
  assert.equal(pfn, pfnOf(p, a));
  assert.ok(k.pages.refcount[pfn] >= 1 + GUP_PIN_COUNTING_BIAS);
  let cpfn = -1;
  let cval = -1;
  const pid = p.fork((c) => {
    cpfn = pfnOf(c, a);
    cval = c.load32(a);
  });
  assert.notEqual(cpfn, pfn, 'child has its own copy');
  assert.equal(cval, 11);
  assert.ok(pteF(p, a) & _PAGE_RW, 'parent keeps its writable PTE');
  assert.ok(k.pages.flags[pfn] & PG_anon_exclusive);
  assert.equal(k.pages.mapcount[pfn], 1);
  // The unpinned neighbour is shared normally.
  assert.equal(pteF(p, a + PG) & _PAGE_RW, 0);
  p.store32(a, 12);
  assert.equal(pfnOf(p, a), pfn, 'no COW fault copy for the pinned page');
  unpinUserPage(k, pfn);
  p.kill(pid, 9);
  p.waitpid(pid);
});

test('fork: shared anonymous memory is shared with the child', () => {
  const { p } = setup();
  const a = p.mmap(0, PG, RW, MAP_SHARED | MAP_ANONYMOUS);
  p.store32(a, 3);
  const pid = p.fork((c) => {
    assert.equal(c.load32(a), 3);
    c.store32(a, 4);
    c.exit(7);
  });
  assert.equal(WEXITSTATUS(p.waitpid(pid).status), 7);
  assert.equal(p.load32(a), 4, 'child write visible to the parent');
});

test('fork: MADV_DONTFORK and MADV_WIPEONFORK', () => {
  const { p } = setup();
  const a = p.mmap(0, PG, RW, PA);
  const b = p.mmap(0, PG, RW, PA);
  p.store32(a, 1);
  p.store32(b, 2);
  assert.equal(p.madvise(a, PG, MADV_DONTFORK), 0);
  assert.equal(p.madvise(b, PG, MADV_WIPEONFORK), 0);
  const pid = p.fork((c) => {
    assert.equal(c.mm!.vmaLookup(a), null, 'DONTFORK: not in the child');
    assert.equal(c.load32(b), 0, 'WIPEONFORK: zero in the child');
    c.exit(0);
  });
  p.waitpid(pid);
  assert.equal(p.load32(b), 2);
});

test('fork: THP PMD is write-protected and shared', () => {
  const { s, p } = setup({ thp: 'always' });
  const k = s.kernel;
  const a = p.mmap(0, 2 << 20, RW, PA);
  p.store32(a, 8);
  const pmd = pmdTableOf(p.mm!.pgd, a, false)!;
  const i = pmdIndex(a);
  const head = pmd.v[i];
  const pid = p.fork((c) => {
    assert.equal(c.mm!.rss.anon, HPAGE_PMD_NR);
    assert.equal(c.load32(a), 8);
  });
  assert.equal(k.pages.entireMapcount[head], 2);
  assert.equal(pmd.f[i] & _PAGE_RW, 0);
  p.kill(pid, 9);
  p.waitpid(pid);
  assert.equal(k.pages.entireMapcount[head], 1);
});

test('fork: device-private and migration entries become readable in parent and child', () => {
  const { s, p } = setup();
  const k = s.kernel;
  const a = p.mmap(0, 2 * PG, RW, PA);
  p.store32(a, 1);
  p.store32(a + PG, 2);
  // Fake a device-private entry and a migration entry in place of the two pages
  // (what migrate_vma would leave), keeping mapcount/refcount semantics.
  const pt = pmdTableOf(p.mm!.pgd, a, false)!.pte[pmdIndex(a)]!;
  const j = pteIndex(a);
  pt.f[j] = T_DEVICE_PRIVATE_WRITE;
  const pfn1 = pt.v[j + 1];
  pt.f[j + 1] = T_MIGRATION_WRITE;
  k.pages.mapcount[pfn1]--; /* try_to_migrate removed the rmap */
  k.pages.refcount[pfn1]--;
  const saved = k.checkHook;
  k.checkHook = null;
  const cmm = k.newMm();
  assert.equal(runSync(k.sched, dupMmap(p.mm!, cmm)), 0);
  assert.equal(pteType(pt.f[j]), T_DEVICE_PRIVATE_READ);
  assert.equal(pteType(pt.f[j + 1]), T_MIGRATION_READ);
  const cpt = pmdTableOf(cmm.pgd, a, false)!.pte[pmdIndex(a)]!;
  assert.equal(pteType(cpt.f[j]), T_DEVICE_PRIVATE_READ);
  assert.equal(pteType(cpt.f[j + 1]), T_MIGRATION_READ);
  assert.equal(k.pages.mapcount[pt.v[j]], 2);
  assert.equal(cmm.rss.anon, 2);
  // Undo the fake entries before teardown.
  runSync(k.sched, mmput(cmm));
  assert.equal(k.pages.mapcount[pt.v[j]], 1);
  pt.f[j] = T_PRESENT;
  pt.f[j + 1] = T_PRESENT;
  k.pages.mapcount[pfn1]++;
  k.pages.refcount[pfn1]++;
  k.checkHook = saved;
});

test('exit: mmu notifier release then unmap; all memory returns', () => {
  const { s, p } = setup();
  const k = s.kernel;
  const free0 = k.buddy.nrFree;
  const a = p.mmap(0, 8 * PG, RW, PA);
  p.fill(a, 8 * PG, 1);
  const events: number[] = [];
  mmuIntervalNotifierInsert(new MmuIntervalNotifier(p.mm!, a, a + 8 * PG - 1, { *invalidate(_s, r) { events.push(r.event); return true; } }));
  p.exit(0);
  assert.equal(events[0], MMU_NOTIFY_RELEASE);
  k.lru.drain();
  assert.equal(k.buddy.nrFree, free0);
});

test('fork: a device-exclusive entry is restored in the parent first; a locked folio makes fork fail with ENOMEM', async () => {
  const { T_DEVICE_EXCLUSIVE } = await import('../src/kernel/mm/pgtable.js');
  const { PG_locked } = await import('../src/kernel/mm/page.js');
  const { s, p } = setup();
  const k = s.kernel;
  const a = p.mmap(0, PG, RW, PA);
  p.store32(a, 31);
  const pt = pmdTableOf(p.mm!.pgd, a, false)!.pte[pmdIndex(a)]!;
  const j = pteIndex(a);
  const pfn = pt.v[j];
  // make_device_exclusive leaves mapcount and the mapping's reference in place.
  pt.f[j] = T_DEVICE_EXCLUSIVE;
  const hook = k.checkHook;
  k.checkHook = null; /* checked mode would flag the driver-held folio lock at rest */
  k.pages.flags[pfn] |= PG_locked; /* a driver still holds the folio lock */
  assert.equal(p.fork(() => undefined), -12, 'ENOMEM');
  assert.equal(pteType(pt.f[j]), T_DEVICE_EXCLUSIVE, 'entry untouched');
  k.pages.flags[pfn] &= ~PG_locked;
  k.checkHook = hook;
  const pid = p.fork((c) => {
    assert.equal(pfnOf(c, a), pfn);
    assert.equal(c.load32(a), 31);
    c.exit(0);
  });
  assert.ok(pid > 0);
  assert.equal(pteType(pt.f[j]), T_PRESENT, 'restored in the parent');
  assert.equal(pt.f[j] & _PAGE_RW, 0, 'and write-protected for COW');
  p.waitpid(pid);
  assert.equal(k.pages.mapcount[pfn], 1);
  p.store32(a, 32);
  assert.equal(pfnOf(p, a), pfn, 'reused after the child exited');
});
