// SPDX-License-Identifier: GPL-2.0-only
/**
 * The operations of `hmmsim fuzz`: plain JSON objects (so a sequence can be
 * printed, stored and replayed) and their fast-check generators.
 *
 * Every operation names its process (`p`), fd (`f`) and device (`d`) by an
 * index that is resolved modulo what exists when it runs (an index into
 * the live processes sorted by pid, into that process's dmirror fds, into
 * the enabled devices), so that any subsequence of a valid sequence is
 * valid too: shrinking only removes or simplifies operations.
 *
 * Addresses live in a fixed arena of three regions, chosen so that the
 * generated ranges overlap a lot:
 *   A  64 small pages                      (vma splits and merges)
 *   T  1024 pages, two PMD-aligned 2 MiB   (THP: fault, collapse, split)
 *   H  1024 pages, two 2 MiB huge pages    (hugetlb; ranges rounded to 2 MiB)
 */
import fc from 'fast-check';

export const PAGE = 4096;
/** The arena: every fuzz mapping lies in [ARENA, ARENA + 12 MiB). */
export const ARENA = 0x40000000;
/** Region -> [first arena page, number of pages]. */
export const REGIONS = { A: [0, 64], T: [512, 1024], H: [2048, 1024] } as const;
export type Region = keyof typeof REGIONS;
/** Pages per 2 MiB huge page. */
export const HPAGE_PAGES = 512;
/** Per-process buffers (outside the arena): ioctl structs at BUF_CMD, data at BUF_DATA. */
export const BUF_CMD = 0x70000000;
export const BUF_DATA = 0x70200000;
/** The largest range (pages) a device or gup operation covers: the data buffer's size. */
export const MAX_OP_PAGES = 1024;
/** Live processes at most (a fork beyond is a no-op). */
export const MAX_PROCS = 4;

export type MapKind = 'anon' | 'shanon' | 'file' | 'fileP' | 'huge' | 'hugeS';
export type Advice = 'DONTNEED' | 'FREE' | 'PAGEOUT' | 'HUGEPAGE' | 'COLLAPSE';
export type DmCmd = 'READ' | 'WRITE' | 'MIGRATE_TO_DEV' | 'MIGRATE_TO_SYS' | 'EXCLUSIVE' | 'CHECK_EXCLUSIVE' | 'SNAPSHOT' | 'RELEASE' | 'FLAGS';
/**
 * Operations on a nouveau file (src/drivers/nouveau/uapi.ts):
 * DRM_IOCTL_NOUVEAU_SVM_INIT, DRM_IOCTL_NOUVEAU_SVM_BIND (migrate the range
 * to VRAM), NOUVEAU_SIM_GPU_ACCESS read / write / atomic of the range.
 */
export type NvCmd = 'INIT' | 'BIND' | 'READ' | 'WRITE' | 'ATOMIC';
/**
 * An SVM_BIND argument made invalid (or unusual) in one way: reserved0/1
 * set, a header bit above the valid ones, va_start >= va_end, another
 * command, another target, a stride, a priority (not checked by mainline),
 * unaligned va_start/va_end (mainline rounds them to pages).
 */
export type NvBindArg = 'reserved' | 'hibits' | 'empty' | 'cmd' | 'target' | 'stride' | 'prio' | 'unaligned';
/** The drivers a fuzz campaign drives (`--drivers`). */
export type DriverName = 'dmirror' | 'nouveau';
export const DRIVER_NAMES: readonly DriverName[] = ['dmirror', 'nouveau'];
/** 0 PROT_NONE, 1 PROT_READ, 3 PROT_READ|PROT_WRITE */
export type Prot = 0 | 1 | 3;

/**
 * A range: region, first page within it, number of pages. With `s` (snap)
 * the range starts inside an existing mapping of the process instead: VMA
 * number a % count (in address order), page floor(a / count) of it; the
 * region is that VMA's. (Raw ranges fall where they fall, mostly on holes.)
 */
export interface Rng {
  r: Region;
  a: number;
  n: number;
  s: boolean;
}

export type Op =
  | ({ o: 'mmap'; p: number; kind: MapKind; prot: Prot } & Rng)
  | ({ o: 'munmap'; p: number } & Rng)
  | ({ o: 'mprotect'; p: number; prot: Prot } & Rng)
  | ({ o: 'madvise'; p: number; adv: Advice } & Rng)
  | ({ o: 'mremap'; p: number; a2: number; n2: number } & Rng)
  /** CPU store of `len` bytes from byte `off` of page a, value pattern v. */
  | { o: 'write'; p: number; r: Region; a: number; s: boolean; off: number; len: number; v: number }
  | { o: 'read'; p: number; r: Region; a: number; s: boolean; off: number; len: number }
  | { o: 'fork'; p: number }
  | { o: 'exit'; p: number }
  | { o: 'open'; p: number; d: number }
  | { o: 'close'; p: number; f: number }
  | ({ o: 'dm'; p: number; f: number; c: DmCmd; v: number } & Rng)
  /** gup_test PIN_LONGTERM_TEST_START (w: FOLL_WRITE, fast: pin_user_pages_fast). */
  | ({ o: 'pin'; p: number; w: boolean; fast: boolean } & Rng)
  /** PIN_LONGTERM_TEST_READ */
  | { o: 'pinread'; p: number }
  /** PIN_LONGTERM_TEST_STOP */
  | { o: 'unpin'; p: number }
  /** gup_test PIN_LONGTERM_BENCHMARK: pin_user_pages(FOLL_LONGTERM) then unpin. */
  | ({ o: 'gup'; p: number; w: boolean } & Rng)
  /** echo m > /sys/kernel/mm/transparent_hugepage/enabled (only with --thp mixed). */
  | { o: 'thp'; m: 'always' | 'madvise' | 'never' }
  /** open /dev/dri/nouveau-sim; with i, DRM_IOCTL_NOUVEAU_SVM_INIT right after (the SVMM mirrors this process). */
  | { o: 'nvopen'; p: number; i: boolean }
  /** close one of the process's nouveau fds (the last reference: nouveau_svmm_fini()). */
  | { o: 'nvclose'; p: number; f: number }
  /** An ioctl on one of the process's nouveau fds over a range of the SVMM's mm (v: write pattern; b: an SVM_BIND argument variant). */
  | ({ o: 'nv'; p: number; f: number; c: NvCmd; v: number; b?: NvBindArg } & Rng)
  /** Device removal (nouveau_dmem_fini(): eviction of every chunk) and a new probe (hot-unplug and replug). */
  | { o: 'nvkill' };

export type OpName = Op['o'];
export const OP_NAMES: readonly OpName[] = ['mmap', 'munmap', 'mprotect', 'madvise', 'mremap', 'write', 'read', 'fork', 'exit', 'open', 'close', 'dm', 'pin', 'pinread', 'unpin', 'gup', 'thp', 'nvopen', 'nvclose', 'nv', 'nvkill'];
/** The operation kinds of each driver (not generated when the driver is not in `--drivers`). */
export const DRIVER_OPS: Record<DriverName, readonly OpName[]> = { dmirror: ['open', 'close', 'dm'], nouveau: ['nvopen', 'nvclose', 'nv', 'nvkill'] };

export interface GenOptions {
  /** Operation kinds not generated. */
  exclude: ReadonlySet<OpName>;
  /** --thp mixed: generate 'thp' operations. */
  thpMixed: boolean;
  /** Number of enabled devices (ops index them modulo). */
  devices: number;
  /** The drivers driven (default dmirror only: the operations of the others are not generated). */
  drivers?: readonly DriverName[];
}

const region = fc.constantFrom<Region>('A', 'A', 'A', 'A', 'T', 'H');

/** A page count biased to small ranges: mostly 1..8, sometimes up to a PMD, rarely a whole region. */
const npages = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 4 }) },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 64 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 1024 }) },
);
/** A first page biased towards the start of the region (so ranges overlap). */
const first = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 3 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 63 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 1023 }) },
);
/** A process index (mostly the first: the one that opened most mirrors). */
const proc = fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.integer({ min: 0, max: 7 }) });
const prot = fc.constantFrom<Prot>(3, 3, 3, 1, 0);
/** Snap to an existing mapping: mostly (shrinks towards true). */
const snap = fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) });

/** The fast-check generator of one operation. */
export function opArbitrary(g: GenOptions): fc.Arbitrary<Op> {
  const rng = { r: region, a: first, n: npages, s: snap };
  const all: Array<{ weight: number; arbitrary: fc.Arbitrary<Op> }> = [
    /* The order is TABLE_ORDER's. With nouveau, mappings are made twice as often (a GPU program's ranges are mapped). */
    { weight: g.drivers?.includes('nouveau') ? 16 : 8, arbitrary: fc.record({ o: fc.constant('mmap' as const), p: proc, kind: fc.constantFrom<MapKind>('anon', 'anon', 'anon', 'shanon', 'file', 'fileP', 'huge', 'hugeS'), prot, ...rng }) },
    { weight: 2, arbitrary: fc.record({ o: fc.constant('munmap' as const), p: proc, ...rng }) },
    { weight: 2, arbitrary: fc.record({ o: fc.constant('mprotect' as const), p: proc, prot, ...rng }) },
    { weight: 4, arbitrary: fc.record({ o: fc.constant('madvise' as const), p: proc, adv: fc.constantFrom<Advice>('DONTNEED', 'FREE', 'PAGEOUT', 'HUGEPAGE', 'COLLAPSE'), ...rng }) },
    { weight: 2, arbitrary: fc.record({ o: fc.constant('mremap' as const), p: proc, a2: first, n2: npages, ...rng }) },
    { weight: 20, arbitrary: fc.record({ o: fc.constant('write' as const), p: proc, r: region, a: first, s: snap, off: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: PAGE - 1 })), len: fc.oneof(fc.integer({ min: 1, max: PAGE }), fc.integer({ min: 1, max: 8 * PAGE })), v: fc.integer({ min: 1, max: 255 }) }) },
    { weight: 10, arbitrary: fc.record({ o: fc.constant('read' as const), p: proc, r: region, a: first, s: snap, off: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: PAGE - 1 })), len: fc.oneof(fc.integer({ min: 1, max: PAGE }), fc.integer({ min: 1, max: 8 * PAGE })) }) },
    { weight: 6, arbitrary: fc.record({ o: fc.constant('fork' as const), p: proc }) },
    { weight: 3, arbitrary: fc.record({ o: fc.constant('exit' as const), p: proc }) },
    { weight: 5, arbitrary: fc.record({ o: fc.constant('open' as const), p: proc, d: fc.integer({ min: 0, max: 3 }) }) },
    { weight: 1, arbitrary: fc.record({ o: fc.constant('close' as const), p: proc, f: fc.integer({ min: 0, max: 3 }) }) },
    {
      weight: 30,
      arbitrary: fc.record({
        o: fc.constant('dm' as const), p: proc, f: fc.integer({ min: 0, max: 3 }),
        c: fc.constantFrom<DmCmd>('READ', 'READ', 'READ', 'READ', 'WRITE', 'WRITE', 'WRITE', 'MIGRATE_TO_DEV', 'MIGRATE_TO_DEV', 'MIGRATE_TO_SYS', 'EXCLUSIVE', 'CHECK_EXCLUSIVE', 'SNAPSHOT', 'RELEASE', 'FLAGS'),
        v: fc.integer({ min: 1, max: 255 }), ...rng,
      }),
    },
    { weight: 1, arbitrary: fc.record({ o: fc.constant('pin' as const), p: proc, w: fc.boolean(), fast: fc.boolean(), ...rng }) },
    { weight: 1, arbitrary: fc.record({ o: fc.constant('pinread' as const), p: proc }) },
    { weight: 1, arbitrary: fc.record({ o: fc.constant('unpin' as const), p: proc }) },
    { weight: 1, arbitrary: fc.record({ o: fc.constant('gup' as const), p: proc, w: fc.boolean(), ...rng }) },
  ];
  all.push({ weight: 1, arbitrary: fc.record({ o: fc.constant('thp' as const), m: fc.constantFrom('always' as const, 'madvise' as const, 'never' as const) }) });
  all.push(
    { weight: 4, arbitrary: fc.record({ o: fc.constant('nvopen' as const), p: proc, i: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }) }) },
    { weight: 1, arbitrary: fc.record({ o: fc.constant('nvclose' as const), p: proc, f: fc.integer({ min: 0, max: 3 }) }) },
    {
      weight: 28,
      arbitrary: fc.oneof(
        {
          weight: 12,
          arbitrary: fc.record({
            o: fc.constant('nv' as const), p: proc, f: fc.integer({ min: 0, max: 3 }),
            c: fc.constantFrom<NvCmd>('INIT', 'BIND', 'BIND', 'BIND', 'READ', 'READ', 'READ', 'WRITE', 'WRITE', 'WRITE', 'ATOMIC', 'ATOMIC'),
            v: fc.integer({ min: 1, max: 255 }), ...rng,
          }),
        },
        {
          weight: 1,
          arbitrary: fc.record({
            o: fc.constant('nv' as const), p: proc, f: fc.integer({ min: 0, max: 3 }), c: fc.constant('BIND' as const),
            v: fc.integer({ min: 1, max: 255 }), b: fc.constantFrom<NvBindArg>('reserved', 'hibits', 'empty', 'cmd', 'target', 'stride', 'prio', 'unaligned'), ...rng,
          }),
        },
      ),
    },
    { weight: 1, arbitrary: fc.record({ o: fc.constant('nvkill' as const) }) },
  );
  const drivers = new Set(g.drivers ?? ['dmirror']);
  const off = new Set<OpName>(g.exclude);
  if (!g.thpMixed) off.add('thp');
  for (const d of DRIVER_NAMES) if (!drivers.has(d)) for (const o of DRIVER_OPS[d]) off.add(o);
  const kept = all.filter((_x, i) => !off.has(TABLE_ORDER[i]));
  if (kept.length === 0) throw new Error('fuzz: every operation kind is excluded');
  return fc.oneof(...kept);
}

/** The op name of each entry of the table above, by position. */
const TABLE_ORDER: readonly OpName[] = OP_NAMES;

/** One line per op, for reports. */
export function formatOp(op: Op): string {
  return JSON.stringify(op);
}
