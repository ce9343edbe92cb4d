// SPDX-License-Identifier: GPL-2.0-only
/**
 * A C program ported line by line onto the simulated user space
 * (`hmmsim run examples/port-malloc.mjs`). The C it stands for is in the
 * comments. It maps a range under test, allocates small buffers with
 * malloc() as a test would (they come from the brk heap, far from the
 * range, and free() does not unmap them, as with glibc), migrates the range
 * to device-private memory through /dev/hmm_dmirror0 (lib/test_hmm.c's
 * HMM_DMIRROR_MIGRATE_TO_DEV), reads it back on the CPU and checks it.
 * Exit status 0 when everything holds.
 */
import { MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, NULL, O_RDWR, PROT_READ, PROT_WRITE } from 'hmmsim';
import { HMM_DMIRROR_MIGRATE_TO_DEV } from 'hmmsim/drivers';

const NPAGES = 16;
const PAGE = 4096;

/** int main(int argc, char *argv[]) */
export default function main({ libc: lc, argv }) {
  const verbose = argv.includes('-v');
  // int fd = open("/dev/hmm_dmirror0", O_RDWR);
  const fd = lc.open('/dev/hmm_dmirror0', O_RDWR);
  if (fd < 0) {
    lc.perror('open');
    return 1;
  }
  // int *ptr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  const size = NPAGES * PAGE;
  const ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ptr === MAP_FAILED) {
    lc.perror('mmap');
    return 1;
  }
  // for (i = 0; i < size / sizeof(int); i++) ptr[i] = i;
  const ints = new Int32Array(size / 4).map((_, i) => i);
  lc.writeI32(ptr, ints);

  // Small buffers, allocated, freed and allocated again.
  const first = [];
  for (let i = 0; i < 8; i++) first.push(lc.malloc(64 * (i + 1)));
  for (const p of first) lc.free(p);
  const second = [];
  for (let i = 0; i < 8; i++) second.push(lc.malloc(64 * (i + 1)));
  const reused = second.filter((p) => first.includes(p)).length;
  lc.printf('heap: %d of 8 buffers reused their address, first at %p; range under test at %p\n', reused, first[0], ptr);

  // struct hmm_dmirror_cmd cmd = { .addr = ptr, .ptr = mirror, .npages = NPAGES };
  const mirror = lc.malloc(size);
  const cmd = lc.stack(40);
  lc.writeU64(cmd + 0, BigInt(ptr));
  lc.writeU64(cmd + 8, BigInt(mirror));
  lc.writeU64(cmd + 16, BigInt(NPAGES));
  lc.writeU64(cmd + 24, 0n);
  lc.writeU64(cmd + 32, 0n);
  // ret = ioctl(fd, HMM_DMIRROR_MIGRATE_TO_DEV, &cmd);
  if (lc.ioctl(fd, HMM_DMIRROR_MIGRATE_TO_DEV, cmd) < 0) {
    lc.perror('ioctl');
    return 1;
  }
  const cpages = Number(lc.readU64(cmd + 24));
  lc.printf('migrated %d pages to device-private memory\n', cpages);

  // The CPU reads fault every page back: for (i ...) assert(ptr[i] == i);
  const back = lc.readI32(ptr, size / 4);
  let bad = 0;
  for (let i = 0; i < back.length; i++) if (back[i] !== i) bad++;
  if (verbose) lc.printf('mallinfo: %s\n', JSON.stringify(lc.mallinfo()));
  lc.printf('%s: %d bad ints, %d buffers reused, %d pages migrated\n', bad === 0 && reused === 8 && cpages === NPAGES ? 'PASS' : 'FAIL', bad, reused, cpages);

  for (const p of second) lc.free(p);
  lc.free(mirror);
  lc.munmap(ptr, size);
  lc.close(fd);
  return bad === 0 && reused === 8 && cpages === NPAGES ? 0 : 1;
}
