// SPDX-License-Identifier: GPL-2.0-only
/**
 * lockdep (kernel/locking/lockdep.c, CONFIG_PROVE_LOCKING and
 * CONFIG_DEBUG_ATOMIC_SLEEP's __might_sleep() in kernel/sched/core.c), on
 * whenever checked mode is (k.config.checked; enableCheckedMode() puts a
 * Lockdep on `sched.lockdep`); every lock primitive tests
 * `s.lockdep !== null` once and otherwise costs nothing.
 *
 * THE LOCK ORDER. This table is the one place the model writes it down; the
 * comments of mm_types.ts and the state-owning files point here, and
 * Lockdep reports an acquisition that inverts it. The source is the
 * "Lock ordering in mm" comment at the top of mm/rmap.c (mainline; the part
 * the model has classes for):
 *
 *   inode->i_rwsem (while writing or truncating, not reading or faulting)
 *     mm->mmap_lock
 *       mapping->invalidate_lock (in filemap_fault)
 *         folio_lock
 *           hugetlbfs_i_mmap_rwsem_key (in huge_pmd_share, see hugetlbfs below)
 *             vma_start_write
 *               mapping->i_mmap_rwsem
 *                 anon_vma->rwsem
 *                   mm->page_table_lock or pte_lock
 *                     swap_lock ... i_pages lock ... lruvec->lru_lock
 *
 * plus what the kernel states elsewhere for the classes rmap.c does not name:
 *  - pmd lock before PTE lock: mm/khugepaged.c collapse_huge_page() /
 *    retract_page_tables() take pmd_lock() then spin_lock_nested(pte ptl),
 *    mm/huge_memory.c __split_huge_pmd() populates the PTE table under the
 *    pmd lock;
 *  - mmu_notifier_invalidate_range_start() is a pseudo lock
 *    (__mmu_notifier_invalidate_range_start_map, include/linux/mmu_notifier.h)
 *    taken with might_sleep(): under mmap_lock, the folio lock and the rmap
 *    locks (try_to_migrate_one() calls it inside rmap_walk()), never under a
 *    page-table lock. Driver locks its callbacks take nest inside it;
 *  - lib/test_hmm.c: dmirror->mutex is taken in dmirror_interval_invalidate()
 *    (so below the notifier map and therefore below mmap_lock, folio lock
 *    and the rmap locks) and in dmirror_migrate_finalize_and_map() with the
 *    migrating folios locked; it is not held around hmm_range_fault()
 *    (dmirror_range_fault() takes it after, to check
 *    mmu_interval_read_retry(), as Documentation/mm/hmm.rst prescribes);
 *    mdevice->devmem_lock is taken by dmirror_allocate_chunk() from
 *    dmirror_devmem_alloc_page() (migrate alloc_and_copy, src folios
 *    locked: folio lock -> devmem_lock), and held by
 *    dmirror_device_remove_chunks() across dmirror_device_evict_chunk():
 *    migrate_device_range() trylocks the device folios, try_to_migrate()
 *    walks the rmap and calls the notifiers, whose dmirror callback takes
 *    dmirror->mutex (devmem_lock -> anon_vma -> notifier -> dmirror->mutex);
 *    devmem_lock nests mdevice->lock (spinlock); mdevice->lock is also taken
 *    by dmirror_devmem_free(), i.e. from folio_put() of a device page, which
 *    zap_nonpresent_ptes() does under the PTL: it is the innermost;
 *  - mm/gup_test.c pin_longterm_test_start() holds pin_longterm_test_mutex
 *    across pin_user_pages() (mmap_lock): outermost.
 *
 * Trylocks may be taken in any order, as in the kernel (lockdep adds no
 * dependency for them): migrate_vma_collect trylocks folios under the PTL;
 * do_swap_page trylocks the device-private folio under the PTL and drops
 * the PTL before calling ->migrate_to_ram.
 *
 * Classes the model keeps implicit (i_mmap_rwsem, anon_vma->rwsem, the
 * hugetlb fault mutex and vma lock, i_pages, lru and zone locks): model rmap
 * walks and allocator paths never yield, and the model's rmap walks collect
 * their targets before acting, so no instance of these classes is ever
 * acquired; they are listed for the order only.
 *
 * What is checked, per simulated thread (Sched.cur: the explorer's task id,
 * 0 for run-to-completion code, which runs on `current`'s thread):
 *  - an acquire that inverts the table above ("lock order inversion");
 *  - the dependency graph is learned as the kernel's lockdep does: holding
 *    A while acquiring B (not a trylock) records A -> B; an acquire that
 *    would close a cycle is "possible circular locking dependency detected"
 *    even when this run does not deadlock;
 *  - "possible recursive locking detected": the same lock again (also
 *    down_read() of an rwsem the thread holds for read: a writer queued in
 *    between deadlocks it, so the kernel's lockdep reports it), or a second
 *    lock of the same class without a nesting annotation (spin_lock_nested /
 *    mmap_write_lock_nested: the `subclass` argument). The folio lock is the
 *    exception: the kernel keeps no lockdep map for PG_locked and holds many
 *    folio locks at once (migrate_vma_collect trylocks every source folio,
 *    the driver lock_page()s fresh destination pages), so only the same
 *    folio twice is reported;
 *  - "bad unlock balance detected": unlock of a lock the thread does not
 *    hold (not held at all, or held by another thread);
 *  - "BUG: sleeping function called from invalid context": a might_sleep()
 *    point (mutex_lock, down_read/down_write, folio_lock, a blocking wait,
 *    mmu_notifier_invalidate_range_start) while a spinlock is held;
 *  - "lock held when returning to user space!" at k.checkpoint() and
 *    "still has locks held!" when an explorer task exits;
 *  - lockdep_assert_held() and friends (assertHeld()).
 * Every report is a KernelBug (kind 'LOCKDEP'; 'BUG' for the sleeping
 * function) whose rule starts with the kernel's headline and whose state
 * lists the held locks as lockdep's "N locks held by comm/pid:" does.
 * After a report the checks go on (the kernel's lockdep turns itself off
 * after the first splat; a test wants every report). A path that dies
 * with a KernelBug in runSync() leaves its locks to a dead task (oops()).
 */
import { KernelBug } from '../printk.js';
import type { Sched } from './sched.js';

/** A lock class (struct lock_class_key). `rank`: position in the order; null: not in it. */
export interface LockClass {
  readonly id: number;
  readonly name: string;
  readonly rank: number | null;
  /** A sleeping lock (mutex, rwsem, folio lock): acquiring it is a might_sleep() point. */
  readonly sleeps: boolean;
  /** A spinlock: holding it is atomic context (preempt_count), where nothing may sleep. */
  readonly atomic: boolean;
  /** Several instances may be held at once without a nesting annotation (the folio lock). */
  readonly multi: boolean;
  /** False: listed for the order only, the model never acquires an instance. */
  readonly modelled: boolean;
}

/**
 * A lock class. The model's classes are LOCK_CLASSES; a test may define its
 * own (ids from 100 up), outside the documented order (rank null).
 */
export function defineLockClass(id: number, name: string, rank: number | null, kind: 'sleep' | 'spin' | 'map', modelled = true, multi = false): LockClass {
  return { id, name, rank, sleeps: kind === 'sleep', atomic: kind === 'spin', multi, modelled };
}
const cls = defineLockClass;

/**
 * The lock classes, outermost first (see the file comment for the sources).
 * A class is taken only after every class above it that the thread holds.
 */
export const LOCK_CLASSES = {
  pin_longterm_test_mutex: cls(0, 'pin_longterm_test_mutex', 0, 'sleep'),
  mmap_lock: cls(1, '&mm->mmap_lock', 10, 'sleep'),
  invalidate_lock: cls(2, 'mapping->invalidate_lock', 15, 'sleep', false),
  folio_lock: cls(3, 'folio_lock (PG_locked)', 20, 'sleep', true, true),
  devmem_lock: cls(8, '&mdevice->devmem_lock', 25, 'sleep'),
  i_mmap_rwsem: cls(4, 'mapping->i_mmap_rwsem', 30, 'sleep', false),
  anon_vma: cls(5, 'anon_vma->rwsem', 35, 'sleep', false),
  mmu_notifier_map: cls(6, '__mmu_notifier_invalidate_range_start_map', 40, 'map'),
  dmirror_mutex: cls(7, '&dmirror->mutex', 50, 'sleep'),
  pmd_lock: cls(9, 'pmd_lock (split PMD ptlock)', 60, 'spin'),
  ptl: cls(10, 'ptlock (pte_lockptr)', 70, 'spin'),
  mdevice_lock: cls(11, '&mdevice->lock', 80, 'spin'),
  i_pages: cls(12, 'mapping->i_pages lock', 90, 'spin', false),
  lru_lock: cls(13, 'lruvec->lru_lock', 95, 'spin', false),
  /* Not in the mm order: only the learned dependency graph applies. */
  testdrv_mutex: cls(14, 'testdrv->mutex', null, 'sleep'),
  /* The nouveau model (src/drivers/nouveau): not ranked yet, the learned graph applies. */
  nouveau_dmem_mutex: cls(15, '&drm->dmem->mutex', null, 'sleep'),
  nouveau_dmem_lock: cls(16, '&drm->dmem->lock', null, 'spin'),
  nouveau_svmm_mutex: cls(17, '&svmm->mutex', null, 'sleep'),
} as const;

/**
 * __mmu_notifier_invalidate_range_start_map (mm/mmu_notifier.c): the pseudo
 * lock held across the invalidate_range_start callbacks, so what a callback
 * takes is ordered after whatever the invalidating path holds.
 */
export const MMU_NOTIFIER_MAP: LockInstance = Object.freeze({ name: '__mmu_notifier_invalidate_range_start_map', cls: LOCK_CLASSES.mmu_notifier_map });

/** Nesting subclass of spin_lock_nested() / mmap_write_lock_nested(). */
export const SINGLE_DEPTH_NESTING = 1;
const MAX_SUBCLASSES = 8;

/** What a lock instance looks like to lockdep. */
export interface LockInstance {
  readonly name: string;
  readonly cls: LockClass;
}

interface HeldLock {
  /** Graph node: class id * MAX_SUBCLASSES + subclass. */
  node: number;
  cls: LockClass;
  inst: LockInstance;
  read: boolean;
  trylock: boolean;
}

/**
 * One simulated thread's locks. Folio locks are kept apart (a count here,
 * the identity in Lockdep.folioOwner): a migration holds hundreds of them
 * and every check stays O(other locks held).
 */
interface ThreadLocks {
  /** The non-folio locks, in acquisition order. */
  held: HeldLock[];
  /** Spinlocks held (the preempt count that makes might_sleep() fire). */
  spin: number;
  /** Folio locks held. */
  folios: number;
}

const FOLIO_NODE = LOCK_CLASSES.folio_lock.id * MAX_SUBCLASSES;
/** How many folio locks a held-lock listing names before "... and N more". */
const LIST_FOLIOS = 8;

/** A few frames of the model's call stack, for "at:" lines (only built when reporting or learning an edge). */
function where(): string {
  const st = new Error().stack ?? '';
  return st
    .split('\n')
    .slice(1)
    .filter((l) => !l.includes('/sched/lockdep.') && !l.includes('/sched/locks.') && !l.includes('node:'))
    .slice(0, 4)
    .map((l) => '  ' + l.trim())
    .join('\n');
}

function folioName(head: number): string {
  return `folio pfn ${head}`;
}

export class Lockdep {
  private readonly threads = new Map<number, ThreadLocks>();
  /** Folio head pfn -> task id + 1 of the thread holding its lock. */
  private readonly folioOwner = new Map<number, number>();
  /** Learned dependencies: adjacency by node, and how each edge was first seen. */
  private readonly after = new Map<number, number[]>();
  private readonly edgeSeen = new Map<number, string>();
  /** Locks left held by a path that died (oops()). */
  private readonly dead = new Set<LockInstance>();
  /** Graph node -> class name (with /subclass). */
  private readonly names = new Map<number, string>([[FOLIO_NODE, LOCK_CLASSES.folio_lock.name]]);
  /** Reports raised so far (tests read it). */
  reports = 0;

  constructor(
    private readonly s: Sched,
    /** comm/pid of `current` (run-to-completion thread 0). */
    private readonly current: () => string,
  ) {}

  private nodeName(node: number): string {
    return this.names.get(node) ?? `class#${Math.floor(node / MAX_SUBCLASSES)}/${node % MAX_SUBCLASSES}`;
  }

  private thread(): ThreadLocks {
    let t = this.threads.get(this.s.cur);
    if (t === undefined) {
      t = { held: [], spin: 0, folios: 0 };
      this.threads.set(this.s.cur, t);
    }
    return t;
  }

  /** "comm/pid" of the running simulated thread. */
  taskName(id = this.s.cur): string {
    if (id === 0) return this.current();
    const t = this.s.tasks.find((x) => x.id === id);
    return `${t ? t.name : 'task'}/${id}`;
  }

  /** The folio heads thread `id` holds locked (reports only: a scan of the held folios). */
  private foliosOf(id: number): number[] {
    const out: number[] = [];
    for (const [head, owner] of this.folioOwner) if (owner === id + 1) out.push(head);
    return out;
  }

  /** lockdep_print_held_locks(): "N locks held by comm/pid:" and one line per lock. */
  heldText(id = this.s.cur): string {
    const t = this.threads.get(id);
    const held = t ? t.held : [];
    const folios = t && t.folios ? this.foliosOf(id) : [];
    const n = held.length + folios.length;
    const name = this.taskName(id);
    if (n === 0) return `no locks held by ${name}.`;
    const lines = [`${n} lock${n === 1 ? '' : 's'} held by ${name}:`];
    held.forEach((h, i) => lines.push(` #${i}: (${h.inst.name}){${this.nodeName(h.node)}}${h.read ? ' read' : ''}${h.trylock ? ' trylock' : ''}`));
    folios.slice(0, LIST_FOLIOS).forEach((f, i) => lines.push(` #${held.length + i}: (${folioName(f)}){${LOCK_CLASSES.folio_lock.name}}`));
    if (folios.length > LIST_FOLIOS) lines.push(` ... and ${folios.length - LIST_FOLIOS} more folio locks`);
    return lines.join('\n');
  }

  /** Locks the running thread holds (tests and assertions). */
  heldCount(id = this.s.cur): number {
    const t = this.threads.get(id);
    return t ? t.held.length + t.folios : 0;
  }

  private bug(headline: string, detail: string, body: string): never {
    this.reports++;
    throw new KernelBug('LOCKDEP', `${headline}: ${detail}`, `${body}\n\n${this.heldText()}\n\nstack:\n${where()}`);
  }

  /**
   * __might_sleep(): the running thread is about to do something that may
   * sleep (`what`); a held spinlock makes it "BUG: sleeping function called
   * from invalid context".
   */
  mightSleep(what: string): void {
    const t = this.threads.get(this.s.cur);
    if (t === undefined || t.spin === 0) return;
    this.reports++;
    throw new KernelBug(
      'BUG',
      `sleeping function called from invalid context: ${what}`,
      `BUG: sleeping function called from invalid context at ${what}\nin_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: ${this.s.cur}, name: ${this.taskName()}\npreempt_count: ${t.spin}, expected: 0\n${this.heldText()}\n\nstack:\n${where()}`,
    );
  }

  /**
   * lock_acquire(): `inst` (class `c`, nesting `subclass`) is being taken by
   * the running thread. Called before a blocking acquire waits (so an
   * inversion is reported instead of a deadlock) and after a trylock
   * succeeded.
   */
  acquire(inst: LockInstance, c: LockClass, subclass: number, read: boolean, trylock: boolean): void {
    const t = this.thread();
    const node = c.id * MAX_SUBCLASSES + subclass;
    if (!this.names.has(node)) this.names.set(node, `${c.name}${subclass ? `/${subclass}` : ''}`);
    if (!trylock && c.sleeps && t.spin !== 0) this.mightSleep(`${read ? 'down_read' : 'lock'}(${inst.name})`);
    const held = t.held;
    for (let i = 0; i < held.length; i++) {
      const h = held[i];
      if (h.inst === inst) {
        this.bug('possible recursive locking detected', `${inst.name} (${c.name})`, `${this.taskName()} is trying to acquire lock:\n (${inst.name}){${c.name}}${read ? ' read' : ''}\n\nbut task is already holding lock:\n (${h.inst.name}){${h.cls.name}}${h.read ? ' read' : ''}\n\n *** DEADLOCK ***`);
      }
      if (trylock) continue;
      if (h.node === node) {
        this.bug('possible recursive locking detected', `${inst.name} (${c.name}) while holding ${h.inst.name} of the same class`, `${this.taskName()} is trying to acquire lock:\n (${inst.name}){${c.name}}\n\nbut task is already holding lock:\n (${h.inst.name}){${h.cls.name}}\n\nMay be due to missing lock nesting notation (spin_lock_nested / mmap_write_lock_nested)`);
      }
      this.checkAfter(h.cls, h.node, h.inst.name, c, node, inst.name);
    }
    if (!trylock && t.folios !== 0) this.checkAfter(LOCK_CLASSES.folio_lock, FOLIO_NODE, 'a folio lock', c, node, inst.name);
    held.push({ node, cls: c, inst, read, trylock });
    if (c.atomic) t.spin++;
  }

  /** Holding `prev` (class pc, graph node pn), the thread acquires class c (node n): order and dependency. */
  private checkAfter(pc: LockClass, pn: number, prevName: string, c: LockClass, n: number, name: string): void {
    if (pc.rank !== null && c.rank !== null && c.rank < pc.rank) {
      this.bug('lock order inversion', `${c.name} taken while holding ${pc.name}`, `${this.taskName()} is trying to acquire lock:\n (${name}){${c.name}}\n\nbut task is already holding lock:\n (${prevName}){${pc.name}}\n\nwhich the documented order (src/kernel/sched/lockdep.ts LOCK_CLASSES, from mm/rmap.c "Lock ordering in mm") takes after it.`);
    }
    if (pn !== n && !this.edgeSeen.has(pn * 4096 + n)) this.addDependency(pn, prevName, n, name);
  }

  /** check_prev_add(): record prev -> next, reporting a cycle it would close. */
  private addDependency(prev: number, prevName: string, next: number, nextName: string): void {
    const path = this.pathFrom(next, prev);
    if (path !== null) {
      const chain = path.map((n, i) => (i + 1 < path.length ? `-> #${path.length - 1 - i} (${this.nodeName(n)}):\n${this.edgeSeen.get(n * 4096 + path[i + 1]) ?? ''}` : '')).filter((x) => x).join('\n\n');
      const p = this.nodeName(prev);
      const q = this.nodeName(next);
      this.bug(
        'possible circular locking dependency detected',
        `${q} while holding ${p} (the reverse order ${path.map((n) => this.nodeName(n)).join(' -> ')} was seen before)`,
        `${this.taskName()} is trying to acquire lock:\n (${nextName}){${q}}\n\nbut task is already holding lock:\n (${prevName}){${p}}\n\nwhich lock already depends on the new lock.\n\nthe existing dependency chain (in reverse order) is:\n${chain}\n\n Possible unsafe locking scenario:\n       CPU0                    CPU1\n       ----                    ----\n  lock(${p});\n                               lock(${q});\n                               lock(${p});\n  lock(${q});\n\n *** DEADLOCK ***`,
      );
    }
    this.edgeSeen.set(prev * 4096 + next, `  ${prevName} then ${nextName} by ${this.taskName()}\n${where()}`);
    let a = this.after.get(prev);
    if (a === undefined) {
      a = [];
      this.after.set(prev, a);
    }
    a.push(next);
  }

  /** A path from -> ... -> to in the learned graph, or null (a breadth-first search over classes). */
  private pathFrom(from: number, to: number): number[] | null {
    const prevOf = new Map<number, number>([[from, -1]]);
    const queue = [from];
    while (queue.length) {
      const n = queue.shift()!;
      if (n === to) {
        const path: number[] = [];
        for (let x = n; x !== -1; x = prevOf.get(x)!) path.unshift(x);
        return path;
      }
      for (const m of this.after.get(n) ?? []) {
        if (!prevOf.has(m)) {
          prevOf.set(m, n);
          queue.push(m);
        }
      }
    }
    return null;
  }

  /** lock_release(): the running thread releases `inst` (`read`: up_read). */
  release(inst: LockInstance, read: boolean): void {
    const t = this.thread();
    const held = t.held;
    for (let i = held.length - 1; i >= 0; i--) {
      const h = held[i];
      if (h.inst !== inst) continue;
      if (h.read !== read) this.bug('bad unlock balance detected', `${read ? 'up_read' : 'up_write/unlock'} of ${inst.name} held for ${h.read ? 'read' : 'write'}`, `${this.taskName()} is trying to release lock (${inst.name}) in the wrong mode`);
      held.splice(i, 1);
      if (h.cls.atomic) t.spin--;
      return;
    }
    if (this.dead.delete(inst)) return;
    let other = '';
    for (const [id, o] of this.threads) if (id !== this.s.cur && o.held.some((h) => h.inst === inst)) other = ` (it is held by ${this.taskName(id)})`;
    this.bug('bad unlock balance detected', `${inst.name} released by ${this.taskName()}, which does not hold it${other}`, `${this.taskName()} is trying to release lock (${inst.name}) at:\n${where()}\nbut there are no more locks to release!`);
  }

  /** lock_map_acquire(): a pseudo lock (a class with no lock object behind it). */
  lockMapAcquire(map: LockInstance): void {
    this.acquire(map, map.cls, 0, false, false);
  }

  /** lock_map_release() */
  lockMapRelease(map: LockInstance): void {
    this.release(map, false);
  }

  /**
   * folio_lock() (trylock false) or folio_trylock() succeeded. `fresh`: a
   * folio_lock() of a folio nobody else can reach (just allocated: the
   * caller's is its only reference, it is unmapped and has no mapping, as
   * zone_device_page_init()'s and a driver's lock_page() of a new
   * destination page): still a might_sleep() point, but it cannot wait, so
   * like a trylock it adds no dependency. Several folio locks may be held
   * (no nesting annotation needed); the same one twice is a self-deadlock.
   */
  folioAcquire(head: number, trylock: boolean, fresh = false): void {
    const t = this.thread();
    const me = this.s.cur + 1;
    if (!trylock && t.spin !== 0) this.mightSleep(`folio_lock(${folioName(head)})`);
    if (this.folioOwner.get(head) === me) this.folioRecursion(head);
    if (!trylock && !fresh) {
      const held = t.held;
      for (let i = 0; i < held.length; i++) this.checkAfter(held[i].cls, held[i].node, held[i].inst.name, LOCK_CLASSES.folio_lock, FOLIO_NODE, folioName(head));
    }
    this.folioOwner.set(head, me);
    t.folios++;
  }

  private folioRecursion(head: number): never {
    this.bug('possible recursive locking detected', `${folioName(head)} (${LOCK_CLASSES.folio_lock.name})`, `${this.taskName()} is trying to acquire lock:\n (${folioName(head)}){${LOCK_CLASSES.folio_lock.name}}\n\nbut task is already holding it\n\n *** DEADLOCK ***`);
  }

  /**
   * Before folio_lock() waits: the running thread holding this folio's lock
   * already is a self-deadlock; report it instead of waiting forever.
   */
  folioWillLock(head: number): void {
    if (this.folioOwner.get(head) === this.s.cur + 1) this.folioRecursion(head);
  }

  /**
   * folio_unlock(). PG_locked has no owner in the kernel (I/O completion
   * unlocks what the submitter locked), so the unlock of a folio lock no
   * simulated thread holds (one given away with folioDisown(), or set by
   * hand) is fine; the unlock of one another thread holds is reported.
   */
  folioRelease(head: number): void {
    const owner = this.folioOwner.get(head);
    if (owner === undefined) return;
    if (owner !== this.s.cur + 1) {
      this.bug('bad unlock balance detected', `${folioName(head)} released by ${this.taskName()}, which does not hold it (it is held by ${this.taskName(owner - 1)})`, `${this.taskName()} is trying to release lock (${folioName(head)}) at:\n${where()}\nbut there are no more locks to release!`);
    }
    this.folioOwner.delete(head);
    this.thread().folios--;
  }

  /**
   * The folio lock of `head` now belongs to a context outside the simulated
   * threads (a driver's device work, I/O in flight, a test standing for
   * another thread): it leaves the holder's locks and anyone may unlock it.
   */
  folioDisown(head: number): void {
    const owner = this.folioOwner.get(head);
    if (owner === undefined) return;
    this.folioOwner.delete(head);
    const t = this.threads.get(owner - 1);
    if (t !== undefined) t.folios--;
  }

  /**
   * The folio lock of `head` passes to a new folio `pfn` (a split of a
   * locked folio locks the new folios, __split_folio_to_order()).
   */
  folioInheritLock(pfn: number): void {
    this.folioOwner.set(pfn, this.s.cur + 1);
    this.thread().folios++;
  }

  /**
   * folioDisown() for every folio lock the running thread holds: a test
   * that runs two contexts on one thread (a migration between setup and
   * finalize, and the process's syscalls meanwhile) hands the migration's
   * folio locks to the driver's context.
   */
  folioDisownAll(): void {
    for (const head of this.foliosOf(this.s.cur)) this.folioDisown(head);
  }

  /**
   * VM_BUG_ON_FOLIO(!folio_test_locked()) with lockdep's knowledge: the bit
   * is the caller's check; here, a folio lock that another simulated
   * thread holds is not the caller's (one no thread holds - given away with
   * folioDisown() - may be, as PG_locked has no owner).
   */
  assertFolioHeld(head: number, what: string): void {
    const owner = this.folioOwner.get(head);
    if (owner === undefined || owner === this.s.cur + 1) return;
    this.bug(`${what}: VM_BUG_ON_FOLIO(!folio_test_locked(folio)) failed`, `${folioName(head)} is locked by ${this.taskName(owner - 1)}, not by ${this.taskName()}`, `WARNING: ${what}() requires the folio lock held by the calling thread`);
  }

  /** Does the running thread hold `inst` (in `read` mode when given)? */
  holds(inst: LockInstance, read?: boolean): boolean {
    const t = this.threads.get(this.s.cur);
    if (t === undefined) return false;
    const held = t.held;
    for (let i = held.length - 1; i >= 0; i--) if (held[i].inst === inst && (read === undefined || held[i].read === read)) return true;
    return false;
  }

  /**
   * lockdep_assert_held() and the kernel's wrappers of it
   * (mmap_assert_locked, mmap_assert_write_locked, ...): `assertion` is the
   * kernel's name for the check, `what` the function whose contract needs
   * it; `read` false requires a write hold.
   */
  assertHeld(inst: LockInstance, what: string, assertion = 'lockdep_assert_held', read?: boolean): void {
    if (this.holds(inst, read)) return;
    const mode = read === false ? ' for write' : '';
    const other = [...this.threads].filter(([id, t]) => id !== this.s.cur && t.held.some((h) => h.inst === inst)).map(([id]) => this.taskName(id));
    this.bug(`${what}: ${assertion} failed`, `${inst.name} not held${mode} by ${this.taskName()}${other.length ? ` (held by ${other.join(', ')})` : ''}`, `WARNING: ${what}() requires ${inst.name} held${mode} by the calling thread (${assertion})`);
  }

  /** Forget every lock of thread `id` (they stay held by a task that is gone, or were reported). */
  private dropThread(id: number, t: ThreadLocks, keepAsDead: boolean): void {
    if (keepAsDead) for (const h of t.held) this.dead.add(h.inst);
    if (t.folios !== 0) for (const head of this.foliosOf(id)) this.folioOwner.delete(head);
    t.held.length = 0;
    t.spin = 0;
    t.folios = 0;
  }

  /**
   * lockdep_sys_exit(): at return to user space (k.checkpoint) the running
   * thread must hold no lock.
   */
  checkReturnToUser(op: string): void {
    const t = this.threads.get(this.s.cur);
    if (t === undefined || (t.held.length === 0 && t.folios === 0)) return;
    const text = this.heldText();
    this.dropThread(this.s.cur, t, true);
    this.reports++;
    throw new KernelBug('LOCKDEP', `lock held when returning to user space!: after ${op}`, `${this.taskName()} is leaving the kernel with locks still held!\n${text}`);
  }

  /** An explorer task finished: debug_check_no_locks_held() at do_exit(). */
  taskExit(id: number): void {
    const t = this.threads.get(id);
    if (t === undefined) return;
    if (t.held.length === 0 && t.folios === 0) {
      this.threads.delete(id);
      return;
    }
    const text = this.heldText(id);
    this.dropThread(id, t, true);
    this.threads.delete(id);
    this.reports++;
    throw new KernelBug('LOCKDEP', `${this.taskName(id)} still has locks held!`, `WARNING: ${this.taskName(id)} still has locks held!\n${text}`);
  }

  /**
   * The running thread's path died with a KernelBug (runSync saw it throw):
   * as after an oops, the locks it held stay held by a task that no longer
   * runs. They leave the thread; a later unlock of one of them (a test
   * cleaning up) is not a balance error.
   */
  oops(): void {
    const t = this.threads.get(this.s.cur);
    if (t === undefined || (t.held.length === 0 && t.folios === 0)) return;
    this.dropThread(this.s.cur, t, true);
  }

  /** The explorer's run ended (normally or by a report): forget its tasks' held locks. */
  forgetTasks(): void {
    for (const [id, t] of this.threads) {
      if (id === 0) continue;
      this.dropThread(id, t, true);
      this.threads.delete(id);
    }
  }

  /** The dependencies learned so far, as "A -> B" lines (for tests and --dmesg). */
  dependencies(): string[] {
    const out: string[] = [];
    for (const [from, tos] of this.after) for (const to of tos) out.push(`${this.nodeName(from)} -> ${this.nodeName(to)}`);
    return out;
  }
}
