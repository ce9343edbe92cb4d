// SPDX-License-Identifier: GPL-2.0-only
/**
 * The shadow model of `hmmsim fuzz`: what a user of Linux may observe, not
 * how the kernel does it. Per process, the mappings of the fuzz arena and,
 * for each page, the set of contents a read may return (Cands: usually one;
 * MADV_FREE makes it {old, zero}, a failed device write {old, new}).
 *
 * Rules (docs/FUZZ.md "Shadow model"):
 *  - private anonymous (and private hugetlb) pages belong to the process; a
 *    fork copies them (COW is invisible), munmap / MADV_DONTNEED make them
 *    zero again;
 *  - shared anonymous, shared hugetlb and memfd (tmpfs) pages belong to an
 *    object shared by every mapping of it, across fork;
 *  - a private mapping of the memfd reads the file until the process writes
 *    the page (then it has its own copy); MADV_DONTNEED drops that copy;
 *  - mremap moves the contents with the mapping;
 *  - no mapping or no PROT_READ: SIGSEGV on a read; no PROT_WRITE: SIGSEGV
 *    on a write.
 * Where the device has migrated a page, swap holds it or a THP backs it is
 * not the shadow's business: the bytes must be the same.
 */
import { PAGE, type MapKind, type Prot } from './ops.js';

/** One candidate content of a page: bytes, or null for all zero. Never mutated once stored. */
export type PV = Uint8Array | null;
/** The contents a read of the page may return (at least one). */
export type Cands = readonly PV[];

export const ZERO: Cands = [null];

/** A shared memory object: shmem of MAP_SHARED|MAP_ANONYMOUS, a shared hugetlb mapping, the memfd. */
export class Obj {
  readonly pages = new Map<number, Cands>();
  /**
   * @param size pages of the object (i_size): a shared anonymous mapping's
   *   shmem file is as large as the mmap; a page at or beyond it is SIGBUS
   *   (e.g. after mremap grew the mapping).
   */
  constructor(readonly name: string, readonly size = Infinity) {}
  get(i: number): Cands {
    return this.pages.get(i) ?? ZERO;
  }
}

export interface SVma {
  /** Arena page numbers [start, end). */
  start: number;
  end: number;
  prot: Prot;
  kind: MapKind;
  /** The object of a shared or file mapping (null: private anonymous / private hugetlb). */
  obj: Obj | null;
  /** Object page of `start`. */
  pgoff: number;
  /** MADV_HUGEPAGE was applied (VM_HUGEPAGE: the kernel splits the VMA there). */
  hp?: boolean;
}

export function isShared(k: MapKind): boolean {
  return k === 'shanon' || k === 'file' || k === 'hugeS';
}
export function isHuge(k: MapKind): boolean {
  return k === 'huge' || k === 'hugeS';
}

/** The shadow of one process's arena. */
export class ShadowMm {
  vmas: SVma[] = [];
  /** Private pages (anon private, private hugetlb, written pages of a private file mapping). */
  priv = new Map<number, Cands>();

  clone(): ShadowMm {
    const c = new ShadowMm();
    c.vmas = this.vmas.map((v) => ({ ...v }));
    c.priv = new Map(this.priv);
    return c;
  }

  vmaAt(g: number): SVma | null {
    for (const v of this.vmas) if (g >= v.start && g < v.end) return v;
    return null;
  }

  /** The contents a read of page g may return, or null when g is not mapped. */
  page(g: number): Cands | null {
    const v = this.vmaAt(g);
    if (v === null) return null;
    return this.pageIn(v, g);
  }

  pageIn(v: SVma, g: number): Cands {
    if (isShared(v.kind)) return v.obj!.get(v.pgoff + g - v.start);
    const c = this.priv.get(g);
    if (c !== undefined) return c;
    if (v.kind === 'fileP') return v.obj!.get(v.pgoff + g - v.start);
    return ZERO;
  }

  setPage(v: SVma, g: number, c: Cands): void {
    if (isShared(v.kind)) v.obj!.pages.set(v.pgoff + g - v.start, c);
    else this.priv.set(g, c);
  }

  /** Whether page g of VMA v lies beyond the end of its object (an access is SIGBUS). */
  beyond(v: SVma, g: number): boolean {
    return v.obj !== null && v.pgoff + (g - v.start) >= v.obj.size;
  }

  /** Whether any page of [g0, g1) is mapped beyond the end of its object. */
  anyBeyond(g0: number, g1: number): boolean {
    for (const v of this.vmas) {
      if (v.end <= g0 || v.start >= g1 || v.obj === null) continue;
      if (this.beyond(v, Math.min(v.end, g1) - 1)) return true;
    }
    return false;
  }

  /** Split the VMA containing g (strictly inside) at g. */
  splitAt(g: number): void {
    const i = this.vmas.findIndex((v) => g > v.start && g < v.end);
    if (i < 0) return;
    const v = this.vmas[i];
    const tail: SVma = { ...v, start: g, pgoff: v.pgoff + (g - v.start) };
    v.end = g;
    this.vmas.splice(i + 1, 0, tail);
  }

  /** munmap [g0, g1): remove the mappings and the private pages. */
  unmap(g0: number, g1: number): void {
    this.splitAt(g0);
    this.splitAt(g1);
    this.vmas = this.vmas.filter((v) => v.end <= g0 || v.start >= g1);
    for (let g = g0; g < g1; g++) this.priv.delete(g);
  }

  insert(v: SVma): void {
    this.unmap(v.start, v.end);
    this.vmas.push(v);
    this.vmas.sort((a, b) => a.start - b.start);
  }

  /** The VMAs intersecting [g0, g1) (after splitting at both ends), in order. */
  within(g0: number, g1: number): SVma[] {
    this.splitAt(g0);
    this.splitAt(g1);
    return this.vmas.filter((v) => v.start >= g0 && v.end <= g1);
  }

  /** Whether every page of [g0, g1) is mapped with all the bits of `need` (0: just mapped). */
  covered(g0: number, g1: number, need: number, pred: (v: SVma) => boolean = () => true): boolean {
    let cur = g0;
    for (const v of this.vmas) {
      if (v.end <= cur) continue;
      if (v.start > cur) return false;
      if ((v.prot & need) !== need || !pred(v)) return false;
      cur = v.end;
      if (cur >= g1) return true;
    }
    return cur >= g1;
  }

  /** Whether any VMA intersecting [g0, g1) satisfies pred. */
  any(g0: number, g1: number, pred: (v: SVma) => boolean): boolean {
    return this.vmas.some((v) => v.start < g1 && v.end > g0 && pred(v));
  }
}

/* ---------------- contents ---------------- */

/** A candidate with bytes [off, off+len) set from src[srcOff..]. */
export function writeInto(pv: PV, off: number, src: Uint8Array, srcOff: number, len: number): Uint8Array {
  const b = pv === null ? new Uint8Array(PAGE) : pv.slice();
  b.set(src.subarray(srcOff, srcOff + len), off);
  return b;
}

export function pvEqual(a: PV, b: PV): boolean {
  if (a === b) return true;
  if (a === null) return isZero(b!, 0, PAGE);
  if (b === null) return isZero(a, 0, PAGE);
  for (let i = 0; i < PAGE; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isZero(b: Uint8Array, off: number, len: number): boolean {
  for (let i = off; i < off + len; i++) if (b[i] !== 0) return false;
  return true;
}

/** Deduplicate candidates. */
export function uniq(c: PV[]): Cands {
  const out: PV[] = [];
  for (const x of c) if (!out.some((y) => pvEqual(x, y))) out.push(x);
  return out;
}

/** Apply a write of [off, off+len) to every candidate. */
export function writeCands(c: Cands, off: number, src: Uint8Array, srcOff: number, len: number): Cands {
  if (off === 0 && len === PAGE) return [src.slice(srcOff, srcOff + PAGE)];
  return uniq(c.map((pv) => writeInto(pv, off, src, srcOff, len)));
}

/**
 * Does `got[gotOff .. gotOff+len)` equal bytes [off, off+len) of some
 * candidate? Returns -1 if so, else the number of bytes that differ from
 * the first candidate.
 */
export function matchCands(c: Cands, off: number, got: Uint8Array, gotOff: number, len: number): number {
  for (const pv of c) {
    let ok = true;
    if (pv === null) {
      for (let i = 0; i < len; i++) if (got[gotOff + i] !== 0) { ok = false; break; }
    } else {
      for (let i = 0; i < len; i++) if (got[gotOff + i] !== pv[off + i]) { ok = false; break; }
    }
    if (ok) return -1;
  }
  const pv = c[0];
  let bad = 0;
  for (let i = 0; i < len; i++) if (got[gotOff + i] !== (pv === null ? 0 : pv[off + i])) bad++;
  return bad;
}

/** A short description of a candidate set for reports (first bytes of each). */
export function describeCands(c: Cands, off: number): string {
  return c.map((pv) => (pv === null ? 'zero' : `[${Array.from(pv.subarray(off, off + 8)).join(',')}...]`)).join(' | ');
}
