// SPDX-License-Identifier: GPL-2.0-only
/**
 * In-place snapshot and restore of a simulated machine, so the explorer
 * builds a scenario's machine once and rolls it back before every schedule
 * instead of constructing a new Kernel (typed arrays, buddy allocator,
 * memremap_pages) thousands of times.
 *
 * Snapshot: a walk of the object graph reachable from the roots (the
 * Kernel plus the objects a scenario names, e.g. its driver) recording, for
 * every object, its own enumerable data properties; for every array its
 * elements; for every Map / Set its entries; for every ArrayBuffer behind a
 * typed array a copy of its bytes. Restore writes all of that back into the
 * same objects: identities are preserved, so closures that captured an
 * object (a pgmap's ops capture their driver; a scenario's thread bodies
 * capture its mm and vma) see the restored state. Objects created after the
 * snapshot simply become unreachable; properties added after it are deleted.
 *
 * What cannot be restored, by construction:
 *  - variables captured by closures (a `let` a callback assigns): keep
 *    mutable scenario state in an object passed as a root;
 *  - module-level variables (the kernel model has two, both harmless: a
 *    warn-once flag and a scratch value set before each use);
 *  - live generators: a snapshot is taken when no task exists (tasks are
 *    created per schedule); one found in the graph is an error.
 * The explorer's tests check, per scenario, that runs on a restored machine
 * and on a freshly built one give identical results.
 *
 * Functions are leaves (not walked, not restored); frozen objects and
 * accessor or read-only properties are left alone.
 */

type AnyObj = Record<string, unknown>;
type RestoreFn = (o: AnyObj, vals: unknown[]) => void;

/**
 * Restore functions by key list. A generic `o[keys[j]] = vals[j]` loop over
 * objects of many shapes is a megamorphic keyed access (slow); a function
 * generated per key list accesses constant property names, which the JIT
 * caches per shape.
 */
const restoreFns = new Map<string, RestoreFn>();
function restoreFnFor(keys: readonly string[]): RestoreFn {
  const id = JSON.stringify(keys);
  let fn = restoreFns.get(id);
  if (fn === undefined) {
    const body = keys.map((key, j) => `if (o[${JSON.stringify(key)}] !== v[${j}]) o[${JSON.stringify(key)}] = v[${j}];`).join('\n');
    fn = new Function('o', 'v', body) as RestoreFn;
    restoreFns.set(id, fn);
  }
  return fn;
}

const LEAF_TAGS = new Set(['[object Promise]', '[object WeakMap]', '[object WeakSet]', '[object WeakRef]', '[object RegExp]', '[object Date]', '[object Error]']);

/** Upper bound on the objects of one machine: a walk beyond it has escaped into something global. */
const MAX_OBJECTS = 500_000;

export interface SnapshotStats {
  objects: number;
  arrays: number;
  maps: number;
  sets: number;
  buffers: number;
  bufferBytes: number;
}

export class Snapshot {
  private readonly objs: AnyObj[] = [];
  private readonly objKeys: string[][] = [];
  private readonly objVals: unknown[][] = [];
  /** Own enumerable keys at snapshot time (restored ones plus any left alone). */
  private readonly objAll: string[][] = [];
  /** Per object, a restore function specialised to its key list (monomorphic property stores). */
  private readonly objRestore: RestoreFn[] = [];
  private readonly arrs: unknown[][] = [];
  private readonly arrVals: unknown[][] = [];
  private readonly maps: Map<unknown, unknown>[] = [];
  private readonly mapVals: Array<Array<[unknown, unknown]>> = [];
  private readonly sets: Set<unknown>[] = [];
  private readonly setVals: unknown[][] = [];
  private readonly bufs: ArrayBuffer[] = [];
  private readonly bufViews: Uint8Array[] = [];
  private readonly bufVals: Uint8Array[] = [];

  constructor(roots: readonly unknown[]) {
    const seen = new Set<object>();
    const seenBufs = new Set<ArrayBufferLike>();
    const stack: unknown[] = [...roots];
    while (stack.length > 0) {
      const v = stack.pop();
      if (typeof v !== 'object' || v === null || seen.has(v)) continue;
      seen.add(v);
      if (seen.size > MAX_OBJECTS) throw new Error(`snapshot: more than ${MAX_OBJECTS} objects reachable from the roots (a reference into global state?)`);
      if (ArrayBuffer.isView(v)) {
        const buf = v.buffer;
        if (seenBufs.has(buf)) continue;
        seenBufs.add(buf);
        if (!(buf instanceof ArrayBuffer)) throw new Error('snapshot: SharedArrayBuffer is not supported');
        const view = new Uint8Array(buf);
        this.bufs.push(buf);
        this.bufViews.push(view);
        this.bufVals.push(view.slice());
        continue;
      }
      if (v instanceof ArrayBuffer) {
        if (seenBufs.has(v)) continue;
        seenBufs.add(v);
        const view = new Uint8Array(v);
        this.bufs.push(v);
        this.bufViews.push(view);
        this.bufVals.push(view.slice());
        continue;
      }
      if (Array.isArray(v)) {
        this.arrs.push(v);
        const copy = v.slice();
        this.arrVals.push(copy);
        for (const e of copy) if (typeof e === 'object' && e !== null) stack.push(e);
        continue;
      }
      if (v instanceof Map) {
        const entries = [...v.entries()];
        this.maps.push(v);
        this.mapVals.push(entries);
        for (const [a, b] of entries) stack.push(a, b);
        continue;
      }
      if (v instanceof Set) {
        const vals = [...v.values()];
        this.sets.push(v);
        this.setVals.push(vals);
        for (const e of vals) stack.push(e);
        continue;
      }
      const tag = Object.prototype.toString.call(v);
      if (tag === '[object Generator]') throw new Error('snapshot: a live generator is reachable from the roots (take the snapshot before spawning tasks)');
      if (LEAF_TAGS.has(tag)) continue;
      if (Object.isFrozen(v)) continue;
      const o = v as AnyObj;
      const descs = Object.getOwnPropertyDescriptors(o);
      const keys: string[] = [];
      const vals: unknown[] = [];
      const all: string[] = [];
      for (const key of Object.keys(descs)) {
        const d = descs[key];
        if (!d.enumerable) continue;
        all.push(key);
        if (!('value' in d) || !d.writable) continue;
        keys.push(key);
        vals.push(d.value);
        if (typeof d.value === 'object' && d.value !== null) stack.push(d.value);
      }
      this.objs.push(o);
      this.objKeys.push(keys);
      this.objVals.push(vals);
      this.objAll.push(all);
      this.objRestore.push(restoreFnFor(keys));
    }
  }

  /** Put every recorded object back into its state at snapshot time. */
  restore(): void {
    const bufs = this.bufs;
    for (let i = 0; i < bufs.length; i++) {
      const saved = this.bufVals[i];
      const b = bufs[i];
      if (b.byteLength !== saved.byteLength) {
        if (!b.resizable) throw new Error('snapshot: a fixed-size ArrayBuffer changed length');
        b.resize(saved.byteLength);
      }
      const view = this.bufViews[i];
      view.set(saved);
    }
    const arrs = this.arrs;
    for (let i = 0; i < arrs.length; i++) {
      const a = arrs[i];
      const saved = this.arrVals[i];
      const n = saved.length;
      if (a.length !== n) a.length = n;
      for (let j = 0; j < n; j++) if (a[j] !== saved[j]) a[j] = saved[j];
    }
    const objs = this.objs;
    for (let i = 0; i < objs.length; i++) {
      const o = objs[i];
      this.objRestore[i](o, this.objVals[i]);
      const all = this.objAll[i];
      let count = 0;
      for (const key in o) if (Object.prototype.hasOwnProperty.call(o, key)) count++;
      if (count !== all.length) {
        const keep = new Set(all);
        for (const key of Object.keys(o)) if (!keep.has(key)) delete o[key];
      }
    }
    for (let i = 0; i < this.maps.length; i++) {
      const m = this.maps[i];
      m.clear();
      for (const [a, b] of this.mapVals[i]) m.set(a, b);
    }
    for (let i = 0; i < this.sets.length; i++) {
      const s = this.sets[i];
      s.clear();
      for (const e of this.setVals[i]) s.add(e);
    }
  }

  stats(): SnapshotStats {
    let bytes = 0;
    for (const b of this.bufVals) bytes += b.byteLength;
    return { objects: this.objs.length, arrays: this.arrs.length, maps: this.maps.length, sets: this.sets.length, buffers: this.bufs.length, bufferBytes: bytes };
  }
}
