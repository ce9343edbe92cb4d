// SPDX-License-Identifier: GPL-2.0-only
/**
 * `hmmsim/drivers`: the model's device drivers, each written against
 * `hmmsim/kernel` only.
 *
 * - {@link TestDev} (testdrv): the smallest complete device-memory driver —
 *   a device-private and a device-coherent pagemap, `->migrate_to_ram()`,
 *   migration to the device, eviction before `memunmap_pages()`. The
 *   template for a new driver.
 * - test_hmm ("dmirror", lib/test_hmm.c): {@link testHmmInit} creates
 *   `/dev/hmm_dmirror0..3`; the ioctl ABI is in the HMM_DMIRROR_* constants
 *   and {@link encodeCmd} / {@link decodeCmd} (struct hmm_dmirror_cmd).
 * - gup_test (mm/gup_test.c): {@link gupTestInit} creates
 *   `/sys/kernel/debug/gup_test`.
 *
 * @module hmmsim/drivers
 */
export { TestDev, type TestDevOptions, type MemKind } from './testdrv/testdrv.js';
export { testHmmInit, testHmmExit } from './test_hmm/index.js';
export {
  HMM_DMIRROR_READ, HMM_DMIRROR_WRITE, HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_EXCLUSIVE, HMM_DMIRROR_CHECK_EXCLUSIVE, HMM_DMIRROR_RELEASE, HMM_DMIRROR_FLAGS, HMM_DMIRROR_CMD_SIZE,
  HMM_DMIRROR_FLAG_FAIL_ALLOC, HMM_DMIRROR_PROT_ERROR, HMM_DMIRROR_PROT_NONE, HMM_DMIRROR_PROT_READ,
  HMM_DMIRROR_PROT_WRITE, HMM_DMIRROR_PROT_PMD, HMM_DMIRROR_PROT_PUD, HMM_DMIRROR_PROT_ZERO,
  HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL, HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE, HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL,
  HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE, HMM_DMIRROR_MEMORY_DEVICE_PRIVATE, HMM_DMIRROR_MEMORY_DEVICE_COHERENT,
  type HmmDmirrorCmd, encodeCmd, decodeCmd,
} from './test_hmm/uapi.js';
export {
  GUP_TEST_PATH, GUP_BASIC_TEST, PIN_BASIC_TEST, PIN_LONGTERM_TEST_START, PIN_LONGTERM_TEST_STOP, PIN_LONGTERM_TEST_READ,
  SIZEOF_GUP_TEST, type GupTest, encodeGupTest, decodeGupTest, gupTestInit,
} from './gup_test.js';
