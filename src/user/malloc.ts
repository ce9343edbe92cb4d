// SPDX-License-Identifier: GPL-2.0-only
/**
 * The simulated C library's allocator, shaped like glibc's malloc
 * (malloc/malloc.c, ptmalloc2) where a program can see the difference:
 *
 *  - Small requests come from the main arena: a heap grown with brk(2)
 *    (sbrk by request + M_TOP_PAD, 128 KiB, page aligned), so the first
 *    heap of a small program is the familiar 132 KiB [heap] at start_brk.
 *    free() does not unmap a small chunk: it goes to the thread cache
 *    (tcache: chunks up to 1040 bytes, 7 per size, LIFO, so the next
 *    malloc of that size returns the same address) or back to the arena,
 *    coalesced with free neighbours and the top chunk.
 *  - The heap is trimmed (brk down, which unmaps) only when a free leaves
 *    a coalesced chunk of at least 64 KiB (FASTBIN_CONSOLIDATION_THRESHOLD)
 *    and the top chunk exceeds M_TRIM_THRESHOLD (128 KiB, then twice the
 *    dynamic mmap threshold); M_TOP_PAD stays mapped.
 *  - Requests of at least M_MMAP_THRESHOLD (128 KiB) that no free chunk or
 *    the top can serve are mmap()ed on their own (chunk = page-aligned
 *    request + 8 bytes, user pointer 16 bytes into the mapping) and
 *    munmap()ed by free(). Freeing an mmapped chunk larger than the
 *    threshold (up to 32 MiB, DEFAULT_MMAP_THRESHOLD_MAX) raises the
 *    threshold to its size and the trim threshold to twice that: glibc's
 *    dynamic threshold.
 *  - realloc() of an mmapped chunk uses mremap(MREMAP_MAYMOVE) (glibc's
 *    mremap_chunk); of a heap chunk, shrinks in place, grows into the top
 *    or a free neighbour, else moves (malloc, copy, free).
 *  - The chunk header (size | PREV_INUSE | IS_MMAPPED) is written into
 *    simulated memory 8 bytes before the user pointer, as glibc does, so
 *    malloc() touches (faults in) the first page of its chunk.
 *  - Errors are glibc's: a request that cannot be met returns NULL with
 *    errno ENOMEM; free() of a pointer malloc did not return, or a double
 *    free, aborts the process (SIGABRT, "free(): invalid pointer").
 *
 * Not modelled (the simulated libc documents these in README.md): fastbins
 * and small/large bin order (a free chunk is found best-fit, lowest address
 * first), malloc_consolidate, per-thread arenas (every thread uses the main
 * arena), the mmap fallback when brk fails (the request is then served by
 * its own mmap), MALLOC_PERTURB_, mallopt(), malloc_trim(), heap
 * consistency checks beyond the invalid-pointer and double-free aborts.
 */
import { PAGE_SIZE } from '../kernel/mm/page.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../kernel/mm/mmap.js';
import { ENOMEM, EINVAL } from '../kernel/errno.js';

/** The system calls and CPU stores the allocator uses (a Process provides them). */
export interface MallocHost {
  brk(addr: number): number;
  mmap(addr: number, len: number, prot: number, flags: number, fd?: number, off?: number): number;
  munmap(addr: number, len: number): number;
  mremap(old: number, oldSize: number, newSize: number, flags: number, newAddr?: number): number;
  store64(addr: number, v: bigint): void;
  readBytes(addr: number, len: number): Uint8Array;
  writeBytes(addr: number, bytes: Uint8Array): void;
  fill(addr: number, len: number, byte: number): void;
  /** abort() with glibc's message (malloc_printerr): the process dies by SIGABRT. */
  abort(msg: string): never;
  /** Checked mode: the arena's invariants are verified after each call (checkArena). */
  readonly checked: boolean;
}

const SIZE_SZ = 8;
const MALLOC_ALIGNMENT = 16;
/** MINSIZE: the smallest chunk. */
const MINSIZE = 32;
const PREV_INUSE = 1;
const IS_MMAPPED = 2;
/** DEFAULT_MMAP_THRESHOLD (M_MMAP_THRESHOLD) */
export const DEFAULT_MMAP_THRESHOLD = 128 * 1024;
/** DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: 4 * 1024 * 1024 * sizeof(long). */
export const DEFAULT_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024;
/** DEFAULT_TRIM_THRESHOLD (M_TRIM_THRESHOLD) */
export const DEFAULT_TRIM_THRESHOLD = 128 * 1024;
/** M_TOP_PAD default */
export const DEFAULT_TOP_PAD = 128 * 1024;
/** DEFAULT_MMAP_MAX (M_MMAP_MAX) */
const DEFAULT_MMAP_MAX = 65536;
/** FASTBIN_CONSOLIDATION_THRESHOLD: a free that leaves a chunk this big considers trimming. */
const FASTBIN_CONSOLIDATION_THRESHOLD = 64 * 1024;
/** tcache: TCACHE_MAX_BINS (64) bins of 16-byte steps from MINSIZE: chunks up to 1040 bytes. */
const TCACHE_MAX_CHUNK = MINSIZE + 63 * MALLOC_ALIGNMENT;
/** TCACHE_FILL_COUNT */
const TCACHE_FILL_COUNT = 7;
/** sizeof(tcache_perthread_struct) as a chunk: the arena's first allocation. */
const TCACHE_STRUCT_CHUNK = 0x290;
/** PTRDIFF_MAX stand-in: larger requests fail with ENOMEM at once. */
const MAX_REQUEST = 2 ** 52;

interface Chunk {
  /** Chunk address (the prev_size word); the user pointer is chunk + 16 (+ an alignment offset for mmapped memalign). */
  chunk: number;
  /** Chunk size; for an mmapped chunk, the whole mapping's length. */
  size: number;
  mmapped: boolean;
}

interface FreeChunk {
  chunk: number;
  size: number;
}

/** request2size() */
function request2size(n: number): number {
  const s = n + SIZE_SZ + MALLOC_ALIGNMENT - 1;
  return s < MINSIZE ? MINSIZE : Math.floor(s / MALLOC_ALIGNMENT) * MALLOC_ALIGNMENT;
}

function pageAlign(n: number): number {
  return Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
}

/** Counters a test or program can read (like malloc_stats()/mallinfo2()). */
export interface MallocStats {
  /** Bytes obtained with brk(2) (arena). */
  arena: number;
  /** Chunks currently mmapped on their own. */
  hblks: number;
  /** Bytes in mmapped chunks. */
  hblkhd: number;
  /** The current mmap threshold (dynamic). */
  mmapThreshold: number;
  /** The current trim threshold. */
  trimThreshold: number;
  /** Calls the allocator made: brk, mmap, munmap, mremap. */
  brkCalls: number;
  mmapCalls: number;
  munmapCalls: number;
  mremapCalls: number;
}

/** One process's main arena and mmap bookkeeping (glibc's main_arena + mp_). */
export class Malloc {
  /** In-use chunks by user pointer. */
  private inuse = new Map<number, Chunk>();
  /** tcache bins: chunk size -> user pointers, most recently freed last. */
  private tcache = new Map<number, number[]>();
  /** Free chunks of the arena (not tcache), sorted by address. */
  private free_: FreeChunk[] = [];
  /** Start of the arena (0 until the first sbrk). */
  private heapStart = 0;
  /** The top chunk: [top, heapEnd). */
  private top = 0;
  private heapEnd = 0;
  private mmapThreshold = DEFAULT_MMAP_THRESHOLD;
  private trimThreshold = DEFAULT_TRIM_THRESHOLD;
  private noDynThreshold = false;
  private nMmaps = 0;
  private mmappedMem = 0;
  readonly counters = { brkCalls: 0, mmapCalls: 0, munmapCalls: 0, mremapCalls: 0 };
  /** errno of the last failing call (the Libc copies it). */
  errno = 0;

  constructor(private host: MallocHost) {}

  /** fork(): the child's copy of the allocator state (its memory is a COW copy of the parent's). */
  cloneFor(host: MallocHost): Malloc {
    const m = new Malloc(host);
    m.inuse = new Map([...this.inuse].map(([k, v]) => [k, { ...v }]));
    m.tcache = new Map([...this.tcache].map(([k, v]) => [k, v.slice()]));
    m.free_ = this.free_.map((f) => ({ ...f }));
    m.heapStart = this.heapStart;
    m.top = this.top;
    m.heapEnd = this.heapEnd;
    m.mmapThreshold = this.mmapThreshold;
    m.trimThreshold = this.trimThreshold;
    m.noDynThreshold = this.noDynThreshold;
    m.nMmaps = this.nMmaps;
    m.mmappedMem = this.mmappedMem;
    return m;
  }

  stats(): MallocStats {
    return {
      arena: this.heapEnd - this.heapStart,
      hblks: this.nMmaps,
      hblkhd: this.mmappedMem,
      mmapThreshold: this.mmapThreshold,
      trimThreshold: this.trimThreshold,
      ...this.counters,
    };
  }

  /** True if ptr is a live allocation. */
  owns(ptr: number): boolean {
    return this.inuse.has(ptr);
  }

  /** malloc_usable_size() (0 for NULL or an unknown pointer). */
  usableSize(ptr: number): number {
    const c = this.inuse.get(ptr);
    if (c === undefined) return 0;
    return c.mmapped ? c.chunk + c.size - ptr : c.chunk + c.size - ptr + SIZE_SZ;
  }

  private setHead(ptr: number, size: number, flags: number): void {
    this.host.store64(ptr - SIZE_SZ, BigInt(size | flags));
  }

  /* ---- the arena's free chunks ---- */

  private freeIndex(addr: number): number {
    const f = this.free_;
    let lo = 0;
    let hi = f.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (f[mid].chunk < addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private insertFree(chunk: number, size: number): void {
    this.free_.splice(this.freeIndex(chunk), 0, { chunk, size });
  }

  /** Take the best-fitting free chunk (smallest, then lowest address) of at least nb bytes. */
  private takeFree(nb: number): FreeChunk | null {
    let best = -1;
    for (let i = 0; i < this.free_.length; i++) {
      const f = this.free_[i];
      if (f.size >= nb && (best < 0 || f.size < this.free_[best].size)) best = i;
    }
    if (best < 0) return null;
    return this.free_.splice(best, 1)[0];
  }

  /** Hand out [chunk, chunk+size) as an in-use chunk of nb bytes; a remainder >= MINSIZE goes back free. */
  private carve(chunk: number, size: number, nb: number): number {
    if (size - nb >= MINSIZE) {
      this.insertFree(chunk + nb, size - nb);
      size = nb;
    }
    const ptr = chunk + 2 * SIZE_SZ;
    this.inuse.set(ptr, { chunk, size, mmapped: false });
    this.setHead(ptr, size, PREV_INUSE);
    return ptr;
  }

  /** sysmalloc(), brk part: grow the heap so the top chunk holds nb + MINSIZE. False if brk refused. */
  private growHeap(nb: number): boolean {
    const h = this.host;
    if (this.heapStart === 0) {
      this.counters.brkCalls++;
      const cur = h.brk(0);
      this.heapStart = this.top = this.heapEnd = cur;
    }
    const topSize = this.heapEnd - this.top;
    const want = pageAlign(nb + DEFAULT_TOP_PAD + MINSIZE - topSize);
    this.counters.brkCalls++;
    const got = h.brk(this.heapEnd + want);
    if (got !== this.heapEnd + want) return false;
    this.heapEnd = got;
    return true;
  }

  /** sysmalloc(), mmap part: a chunk of its own. Returns the user pointer or 0. */
  private mmapChunk(nb: number, align = MALLOC_ALIGNMENT): number {
    const extra = align > MALLOC_ALIGNMENT ? align : 0;
    const size = pageAlign(nb + SIZE_SZ + extra);
    this.counters.mmapCalls++;
    const a = this.host.mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    if (a < 0) return 0;
    let ptr = a + 2 * SIZE_SZ;
    if (ptr % align !== 0) ptr += align - (ptr % align);
    this.nMmaps++;
    this.mmappedMem += size;
    this.inuse.set(ptr, { chunk: a, size, mmapped: true });
    this.setHead(ptr, size - (ptr - 2 * SIZE_SZ - a), IS_MMAPPED);
    return ptr;
  }

  /** _int_malloc() for a chunk of nb bytes (request2size applied). Returns the user pointer or 0. */
  private intMalloc(nb: number): number {
    if (this.heapStart === 0 && !this.tcacheInit()) return 0;
    if (nb <= TCACHE_MAX_CHUNK) {
      const bin = this.tcache.get(nb);
      if (bin !== undefined && bin.length > 0) {
        const ptr = bin.pop()!;
        this.inuse.set(ptr, { chunk: ptr - 2 * SIZE_SZ, size: nb, mmapped: false });
        return ptr;
      }
    }
    const f = this.takeFree(nb);
    if (f !== null) return this.carve(f.chunk, f.size, nb);
    for (let attempt = 0; attempt < 2; attempt++) {
      // use_top:
      if (this.heapEnd - this.top >= nb + MINSIZE) {
        const chunk = this.top;
        this.top += nb;
        return this.carve(chunk, nb, nb);
      }
      if (attempt === 1) break;
      // sysmalloc():
      if (nb >= this.mmapThreshold && this.nMmaps < DEFAULT_MMAP_MAX) {
        const p = this.mmapChunk(nb);
        if (p !== 0) return p;
      }
      if (!this.growHeap(nb)) return this.mmapChunk(nb);
    }
    return 0;
  }

  /** tcache_init(): the arena's first chunk is the tcache_perthread_struct. */
  private tcacheInit(): boolean {
    if (!this.growHeap(TCACHE_STRUCT_CHUNK)) return false;
    const chunk = this.top;
    this.top += TCACHE_STRUCT_CHUNK;
    const ptr = chunk + 2 * SIZE_SZ;
    this.setHead(ptr, TCACHE_STRUCT_CHUNK, PREV_INUSE);
    return true;
  }

  /** malloc(n): the user pointer, or 0 (NULL) with errno ENOMEM. */
  malloc(n: number): number {
    if (!(n >= 0) || n > MAX_REQUEST) {
      this.errno = ENOMEM;
      return 0;
    }
    const p = this.intMalloc(request2size(n));
    if (p === 0) this.errno = ENOMEM;
    if (this.host.checked) this.checkArena('malloc');
    return p;
  }

  /**
   * Checked mode: the arena's bookkeeping is consistent — free chunks are
   * sorted, at least MINSIZE, 16-byte aligned, inside [heap start, top),
   * and overlap neither each other nor an in-use heap chunk; the top chunk
   * ends at the heap end. A violation is a bug in this allocator model.
   */
  private checkArena(op: string): void {
    const bad = (why: string): never => {
      throw new Error(`malloc model (${op}): ${why}`);
    };
    if (this.top > this.heapEnd || this.top < this.heapStart) bad(`top 0x${this.top.toString(16)} outside the heap`);
    let prevEnd = this.heapStart;
    for (const f of this.free_) {
      if (f.size < MINSIZE || f.chunk % MALLOC_ALIGNMENT !== 0 || f.size % MALLOC_ALIGNMENT !== 0) bad(`free chunk 0x${f.chunk.toString(16)} size ${f.size}`);
      if (f.chunk < prevEnd) bad(`free chunk 0x${f.chunk.toString(16)} overlaps the one before`);
      prevEnd = f.chunk + f.size;
      if (prevEnd > this.top) bad(`free chunk 0x${f.chunk.toString(16)} runs into the top chunk`);
    }
    for (const c of this.inuse.values()) {
      if (c.mmapped) continue;
      const i = this.freeIndex(c.chunk + c.size);
      if (i > 0 && this.free_[i - 1].chunk + this.free_[i - 1].size > c.chunk) bad(`in-use chunk 0x${c.chunk.toString(16)} overlaps a free one`);
      if (c.chunk + c.size > this.top) bad(`in-use chunk 0x${c.chunk.toString(16)} runs into the top chunk`);
    }
  }

  /** calloc(nmemb, size): zeroed memory (an mmapped chunk is fresh zero pages and is not cleared). */
  calloc(nmemb: number, size: number): number {
    const n = nmemb * size;
    if (!Number.isSafeInteger(n) || n < 0 || n > MAX_REQUEST) {
      this.errno = ENOMEM;
      return 0;
    }
    const p = this.malloc(n);
    if (p === 0) return 0;
    const c = this.inuse.get(p)!;
    if (!c.mmapped && n > 0) this.host.fill(p, n, 0);
    return p;
  }

  /** free(ptr) (_int_free / munmap_chunk). */
  free(ptr: number): void {
    if (ptr === 0) return;
    const c = this.inuse.get(ptr);
    if (c === undefined) {
      for (const bin of this.tcache.values()) if (bin.includes(ptr)) this.host.abort('free(): double free detected in tcache 2');
      this.host.abort('free(): invalid pointer');
    }
    this.inuse.delete(ptr);
    if (c.mmapped) {
      // The dynamic mmap threshold (glibc 2.x __libc_free).
      if (!this.noDynThreshold && c.size > this.mmapThreshold && c.size <= DEFAULT_MMAP_THRESHOLD_MAX) {
        this.mmapThreshold = c.size;
        this.trimThreshold = 2 * this.mmapThreshold;
      }
      this.nMmaps--;
      this.mmappedMem -= c.size;
      this.counters.munmapCalls++;
      this.host.munmap(c.chunk, c.size);
      return;
    }
    if (c.size <= TCACHE_MAX_CHUNK) {
      let bin = this.tcache.get(c.size);
      if (bin === undefined) this.tcache.set(c.size, (bin = []));
      if (bin.length < TCACHE_FILL_COUNT) {
        bin.push(ptr);
        return;
      }
    }
    this.freeToArena(c.chunk, c.size);
    if (this.host.checked) this.checkArena('free');
  }

  /** The part of _int_free after the tcache: coalesce, maybe trim. */
  private freeToArena(chunk: number, size: number): void {
    let i = this.freeIndex(chunk);
    // Backward: a free chunk ending here.
    if (i > 0 && this.free_[i - 1].chunk + this.free_[i - 1].size === chunk) {
      const prev = this.free_.splice(i - 1, 1)[0];
      chunk = prev.chunk;
      size += prev.size;
      i--;
    }
    // Forward: a free chunk, or the top.
    if (i < this.free_.length && this.free_[i].chunk === chunk + size) {
      size += this.free_.splice(i, 1)[0].size;
    }
    if (chunk + size === this.top) {
      this.top = chunk;
    } else {
      this.insertFree(chunk, size);
    }
    if (size >= FASTBIN_CONSOLIDATION_THRESHOLD && this.heapEnd - this.top >= this.trimThreshold) this.systrim();
  }

  /** systrim(): give the top chunk back to the kernel (brk down), keeping M_TOP_PAD. */
  private systrim(): void {
    const topArea = this.heapEnd - this.top - MINSIZE - 1;
    if (topArea <= DEFAULT_TOP_PAD) return;
    const extra = Math.floor((topArea - DEFAULT_TOP_PAD) / PAGE_SIZE) * PAGE_SIZE;
    if (extra === 0) return;
    this.counters.brkCalls++;
    const got = this.host.brk(this.heapEnd - extra);
    if (got === this.heapEnd - extra) this.heapEnd = got;
  }

  /** realloc(ptr, n) */
  realloc(ptr: number, n: number): number {
    const r = this.realloc1(ptr, n);
    if (this.host.checked) this.checkArena('realloc');
    return r;
  }

  private realloc1(ptr: number, n: number): number {
    if (ptr === 0) return this.malloc(n);
    if (n === 0) {
      this.free(ptr);
      return 0;
    }
    const c = this.inuse.get(ptr);
    if (c === undefined) this.host.abort('realloc(): invalid pointer');
    if (!(n >= 0) || n > MAX_REQUEST) {
      this.errno = ENOMEM;
      return 0;
    }
    const nb = request2size(n);
    const old = this.usableSize(ptr);
    if (c.mmapped) {
      // mremap_chunk(): the mapping follows the request, page aligned.
      const offset = ptr - c.chunk;
      const newSize = pageAlign(nb + offset - 2 * SIZE_SZ + SIZE_SZ);
      if (newSize === c.size) return ptr;
      this.counters.mremapCalls++;
      const a = this.host.mremap(c.chunk, c.size, newSize, 1 /* MREMAP_MAYMOVE */);
      if (a >= 0) {
        this.inuse.delete(ptr);
        this.mmappedMem += newSize - c.size;
        const np = a + offset;
        this.inuse.set(np, { chunk: a, size: newSize, mmapped: true });
        this.setHead(np, newSize - offset + 2 * SIZE_SZ, IS_MMAPPED);
        return np;
      }
      if (old >= n) return ptr;
      return this.moveTo(ptr, n, old);
    }
    if (c.size >= nb) {
      if (c.size - nb >= MINSIZE) {
        this.freeToArena(c.chunk + nb, c.size - nb);
        c.size = nb;
        this.setHead(ptr, nb, PREV_INUSE);
      }
      return ptr;
    }
    const end = c.chunk + c.size;
    if (end === this.top && this.heapEnd - this.top >= nb - c.size + MINSIZE) {
      this.top = c.chunk + nb;
      c.size = nb;
      this.setHead(ptr, nb, PREV_INUSE);
      return ptr;
    }
    const i = this.freeIndex(end);
    if (i < this.free_.length && this.free_[i].chunk === end && c.size + this.free_[i].size >= nb) {
      const f = this.free_.splice(i, 1)[0];
      const total = c.size + f.size;
      if (total - nb >= MINSIZE) {
        this.insertFree(c.chunk + nb, total - nb);
        c.size = nb;
      } else c.size = total;
      this.setHead(ptr, c.size, PREV_INUSE);
      return ptr;
    }
    return this.moveTo(ptr, n, old);
  }

  /** realloc's fallback: malloc, copy the old contents, free. */
  private moveTo(ptr: number, n: number, old: number): number {
    const np = this.malloc(n);
    if (np === 0) return 0;
    const len = Math.min(old, n);
    if (len > 0) this.host.writeBytes(np, this.host.readBytes(ptr, len));
    this.free(ptr);
    return np;
  }

  /**
   * posix_memalign() / memalign() core (_int_memalign): a chunk whose user
   * pointer is a multiple of `alignment` (a power of two). Returns the
   * pointer or 0 (ENOMEM); EINVAL for a bad alignment.
   */
  memalign(alignment: number, n: number): number {
    if (!(alignment > 0) || (alignment & (alignment - 1)) !== 0) {
      this.errno = EINVAL;
      return 0;
    }
    if (alignment <= MALLOC_ALIGNMENT) return this.malloc(n);
    if (!(n >= 0) || n > MAX_REQUEST) {
      this.errno = ENOMEM;
      return 0;
    }
    const nb = request2size(n);
    if (nb >= this.mmapThreshold) {
      const p = this.mmapChunk(nb, alignment);
      if (p === 0) this.errno = ENOMEM;
      return p;
    }
    const raw = this.intMalloc(nb + alignment + MINSIZE);
    if (raw === 0) {
      this.errno = ENOMEM;
      return 0;
    }
    const c = this.inuse.get(raw)!;
    this.inuse.delete(raw);
    if (c.mmapped) {
      // Served by its own mapping: keep it, with the user pointer moved up.
      let p = raw;
      if (p % alignment !== 0) p += alignment - (p % alignment);
      this.inuse.set(p, c);
      this.setHead(p, c.size - (p - 2 * SIZE_SZ - c.chunk), IS_MMAPPED);
      return p;
    }
    let chunk = c.chunk;
    let size = c.size;
    let p = chunk + 2 * SIZE_SZ;
    if (p % alignment !== 0) {
      let np = p + alignment - (p % alignment);
      if (np - p < MINSIZE) np += alignment;
      const lead = np - p;
      this.freeToArena(chunk, lead);
      chunk += lead;
      size -= lead;
      p = np;
    }
    if (size - nb >= MINSIZE) {
      this.freeToArena(chunk + nb, size - nb);
      size = nb;
    }
    this.inuse.set(p, { chunk, size, mmapped: false });
    this.setHead(p, size, PREV_INUSE);
    return p;
  }
}
