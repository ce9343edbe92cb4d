// SPDX-License-Identifier: GPL-2.0-only
/**
 * The page-migration copy offload of the DMA folio-migration RFC
 * ("[RFC PATCH 4/5] mm: add support for DMA folio Migration",
 * Mike Day / Shivank Garg, June 2024; mm/migrate_dma.c,
 * include/linux/migrate_dma.h): a `struct migrator` whose migrate_dma()
 * replaces folios_copy() in the batch move of migrate_pages(), and whose
 * can_migrate_dma() says which folios it takes, switched by
 * start_offloading() / stop_offloading().
 *
 * The switch (dma_update_migrator()): under migrator_mut, the two static
 * calls are updated, then call_srcu() + srcu_barrier() wait for a grace
 * period of mig_srcu. A static call is a patched direct call: a batch that
 * already called the old function keeps running it. What the barrier buys
 * is observable only if the batch copy runs inside an SRCU read-side
 * section: the model does that (srcu_read_lock around the copy, as the
 * later revisions place it, RFC v4 changelog "fixed the srcu_read_lock()
 * placement"), so a switch waits for every in-flight batch copy, and a
 * switch from inside a batch copy (a migrator calling stop_offloading() from
 * its own migrate_dma) can never finish: a HANG, as srcu_barrier() inside
 * the read section would be in the kernel.
 *
 * Where that first RFC and the model differ, deliberately:
 *  - the first RFC's migrate_folios_batch_move() calls the static call without
 *    srcu_read_lock(), so its srcu_barrier() waits for nothing (a module
 *    could be unloaded under a running migrate_dma): see docs/COST_MODEL.md.
 *  - the first RFC turns can_migrate_dma() == false into rc = -EAGAIN for the
 *    folio, which retries it with the same answer until the retry limit and
 *    then fails its migration. RFC v6 instead marks each folio the migrator
 *    copied (FOLIO_CONTENT_COPIED) and copies the others on the CPU. The
 *    model does v6's fallback: a folio the migrator does not take is copied
 *    by folio_copy() in the move step, and migrates.
 *  - RFC v6 names the hook offload_copy / the driver dcbm and adds a reason
 *    mask and should_batch(); the model keeps the first RFC's names.
 */
import type { Kernel } from '../kernel.js';
import { KernelBug } from '../printk.js';
import { type K, waitUntil, runSync } from '../sched/sched.js';

/** struct migrator (include/linux/migrate_dma.h). */
export interface Migrator {
  name: string;
  /**
   * migrate_dma(dst_list, src_list): copy the contents of each src folio to
   * the dst folio at the same index. Returns, per index, whether that folio
   * was copied (RFC v6's FOLIO_CONTENT_COPIED); a folio not copied is copied
   * by the CPU afterwards. Called inside the SRCU read section, folios
   * locked and unmapped.
   */
  migrateDma(k: Kernel, dsts: number[], srcs: number[]): boolean[];
  /** can_migrate_dma(dst, src): may this migrator copy this folio pair? */
  canMigrateDma(k: Kernel, dst: number, src: number): boolean;
}

/** The offload state of one machine: the active migrator and mig_srcu's readers. */
export interface MigrateOffload {
  /** The migrator the static calls point at; null = the kernel's folios_copy(). */
  active: Migrator | null;
  /** dispatch_to_dma */
  dispatchToDma: boolean;
  /** mig_srcu read-side sections in progress (batch copies running). */
  readers: number;
  /** migrator_mut held by a switch in progress. */
  switching: boolean;
  /** Batch copies done per migrator name ("kernel" for folios_copy). */
  batches: Map<string, number>;
}

/** The machine's offload state, created on first use (the migrator symbol's static initializer). */
export function migrateOffload(k: Kernel): MigrateOffload {
  if (k.migrateOffload === null) k.migrateOffload = { active: null, dispatchToDma: false, readers: 0, switching: false, batches: new Map() };
  return k.migrateOffload as MigrateOffload;
}

/**
 * dma_update_migrator(mig): point the static calls at mig (null: the
 * kernel's folios_copy), then wait for a grace period of mig_srcu (every
 * batch copy that started before the switch has finished).
 */
export function* dmaUpdateMigrator(k: Kernel, mig: Migrator | null): K<void> {
  const st = migrateOffload(k);
  yield* waitUntil(k.sched, 'mutex_lock(&migrator_mut)', () => !st.switching);
  st.switching = true;
  st.active = mig;
  st.switching = false;
  // call_srcu() + srcu_barrier(): all readers that may run the old function are done.
  yield* waitUntil(k.sched, 'srcu_barrier(&mig_srcu)', () => st.readers === 0);
}

/** start_offloading(migrator): pr_info, switch, dispatch_to_dma = 1. */
export function startOffloading(k: Kernel, mig: Migrator): void {
  k.printk.info(`starting migration offload by ${mig.name}`);
  runSync(k.sched, dmaUpdateMigrator(k, mig));
  migrateOffload(k).dispatchToDma = true;
}

/** stop_offloading(): pr_info, switch back to folios_copy, dispatch_to_dma = 0. */
export function stopOffloading(k: Kernel): void {
  const st = migrateOffload(k);
  k.printk.info(`stopping migration offload by ${st.active?.name ?? 'kernel'}`);
  if (st.readers > 0) throw new KernelBug('HANG', 'stop_offloading() inside a migrate_dma() batch copy', 'srcu_barrier(&mig_srcu) waits for the read-side section of the caller itself');
  runSync(k.sched, dmaUpdateMigrator(k, null));
  st.dispatchToDma = false;
}

/** get_active_migrator_name() */
export function getActiveMigratorName(k: Kernel): string {
  return k.migrateOffload === null ? 'kernel' : (migrateOffload(k).active?.name ?? 'kernel');
}

/**
 * The batch copy step of migrate_pages_batch(): static_call(_folios_copy)
 * under srcu_read_lock(&mig_srcu). Without an active migrator the kernel's
 * folios_copy() copies in the move step (returns null: nothing copied yet,
 * the caller copies and charges each folio). With one, the pairs that
 * can_migrate_dma() accepts go to migrate_dma(); the returned flags say
 * which were copied.
 */
export function migratorCopyBatch(k: Kernel, dsts: number[], srcs: number[]): boolean[] | null {
  const st = k.migrateOffload as MigrateOffload | null;
  if (st === null || st.active === null) return null;
  const mig = st.active;
  st.readers++; /* srcu_read_lock(&mig_srcu) */
  try {
    const takeD: number[] = [];
    const takeS: number[] = [];
    const at: number[] = [];
    for (let i = 0; i < srcs.length; i++) {
      if (mig.canMigrateDma(k, dsts[i], srcs[i])) {
        takeD.push(dsts[i]);
        takeS.push(srcs[i]);
        at.push(i);
      }
    }
    const out = new Array<boolean>(srcs.length).fill(false);
    if (takeS.length > 0) {
      const done = mig.migrateDma(k, takeD, takeS);
      for (let j = 0; j < at.length; j++) out[at[j]] = done[j] === true;
    }
    st.batches.set(mig.name, (st.batches.get(mig.name) ?? 0) + 1);
    return out;
  } finally {
    st.readers--; /* srcu_read_unlock() */
  }
}
