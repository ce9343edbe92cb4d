// SPDX-License-Identifier: GPL-2.0-only
/**
 * dmirror_fops_unlocked_ioctl(): the command dispatcher.
 */
import type { K } from '../../kernel/sched/sched.js';
import { EFAULT, EINVAL } from '../../kernel/errno.js';
import type { File } from '../../kernel/fs/chardev.js';
import { copyFromUser, copyToUser } from '../../kernel/uaccess.js';
import { dmirrorDeviceRemoveChunks } from './device.js';
import type { Dmirror } from './mirror.js';
import { dmirrorRead, dmirrorWrite } from './fault.js';
import { dmirrorMigrateToDevice, dmirrorMigrateToSystem } from './migrate.js';
import { dmirrorSnapshot } from './snapshot.js';
import { dmirrorCheckAtomic, dmirrorExclusive } from './exclusive.js';
import {
  HMM_DMIRROR_CHECK_EXCLUSIVE, HMM_DMIRROR_CMD_SIZE, HMM_DMIRROR_EXCLUSIVE, HMM_DMIRROR_FLAGS,
  HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_READ, HMM_DMIRROR_RELEASE,
  HMM_DMIRROR_SNAPSHOT, HMM_DMIRROR_WRITE, decodeCmd, encodeCmd,
} from './uapi.js';

const U64_MASK = (1n << 64n) - 1n;

/**
 * dmirror_fops_unlocked_ioctl(file, command, arg): copy struct
 * hmm_dmirror_cmd from arg (-EFAULT), reject an unaligned addr (-EINVAL) and
 * addr >= addr + (npages << PAGE_SHIFT) in u64 arithmetic (-EINVAL: npages
 * 0 or a wrapping range), zero cpages and faults, run the command (an
 * unknown one is -EINVAL), and on success copy the struct back (-EFAULT).
 * A failing command's error is returned and nothing is copied back.
 * Runs in the caller's context (current->mm is the ioctl caller's mm,
 * which may differ from the mirror's after fork()).
 */
export function* dmirrorFopsUnlockedIoctl(file: File, command: number, arg: number): K<number> {
  const dmirror = file.privateData as Dmirror | null;
  if (!dmirror) return -EINVAL;
  const k = dmirror.k;
  const umm = k.current.mm;
  if (umm === null) return -EFAULT;
  const buf = new Uint8Array(HMM_DMIRROR_CMD_SIZE);
  if (yield* copyFromUser(umm, buf, arg, HMM_DMIRROR_CMD_SIZE)) return -EFAULT;
  const cmd = decodeCmd(buf);
  if (cmd.addr & 0xfffn) return -EINVAL;
  if (cmd.addr >= ((cmd.addr + (cmd.npages << 12n)) & U64_MASK)) return -EINVAL;
  cmd.cpages = 0n;
  cmd.faults = 0n;
  let ret: number;
  switch (command >>> 0) {
    case HMM_DMIRROR_READ:
      ret = yield* dmirrorRead(dmirror, cmd);
      break;
    case HMM_DMIRROR_WRITE:
      ret = yield* dmirrorWrite(dmirror, cmd);
      break;
    case HMM_DMIRROR_MIGRATE_TO_DEV:
      ret = yield* dmirrorMigrateToDevice(dmirror, cmd);
      break;
    case HMM_DMIRROR_MIGRATE_TO_SYS:
      ret = yield* dmirrorMigrateToSystem(dmirror, cmd);
      break;
    case HMM_DMIRROR_EXCLUSIVE:
      ret = yield* dmirrorExclusive(dmirror, cmd);
      break;
    case HMM_DMIRROR_CHECK_EXCLUSIVE: {
      const end = (cmd.addr + (cmd.npages << 12n)) & U64_MASK;
      ret = dmirrorCheckAtomic(dmirror, Number(cmd.addr), Number(end));
      break;
    }
    case HMM_DMIRROR_SNAPSHOT:
      ret = yield* dmirrorSnapshot(dmirror, cmd);
      break;
    case HMM_DMIRROR_RELEASE:
      yield* dmirrorDeviceRemoveChunks(dmirror.mdevice);
      ret = 0;
      break;
    case HMM_DMIRROR_FLAGS:
      dmirror.flags = cmd.npages;
      ret = 0;
      break;
    default:
      return -EINVAL;
  }
  if (ret) return ret;
  if (yield* copyToUser(umm, arg, encodeCmd(cmd), HMM_DMIRROR_CMD_SIZE)) return -EFAULT;
  return 0;
}
