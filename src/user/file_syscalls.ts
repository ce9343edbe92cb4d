// SPDX-License-Identifier: GPL-2.0-only
/**
 * The file system calls of a process: open (character devices, tmpfs files
 * in /tmp and /dev/shm, O_TMPFILE, /proc/self/fd/N, the System's pseudo
 * files), close, read/pread, write/pwrite, ftruncate, ioctl, unlink. Each
 * is the generator a Process's `sys` table and its plain methods drive;
 * each returns >= 0 or -errno and ends with the process's checkpoint.
 */
import type { Kernel } from '../kernel/kernel.js';
import type { K } from '../kernel/sched/sched.js';
import { EBADF, EEXIST, EFAULT, EINVAL, EISDIR, EMFILE, ENOENT, ENOTTY, ESPIPE, ENXIO } from '../kernel/errno.js';
import {
  File, FMODE_READ, FMODE_WRITE, O_ACCMODE, O_CREAT, O_EXCL, O_RDONLY, O_TMPFILE, O_TRUNC, chrdevOpen, fput,
} from '../kernel/fs/chardev.js';
import { shmemFileSetup, shmemFileOperations, shmemTruncate, mappingGet, mappingPut } from '../kernel/mm/shmem.js';
import { copyFromUser, copyToUser } from '../kernel/uaccess.js';
import type { Process } from './process.js';

/** MAX_RW_COUNT (INT_MAX & PAGE_MASK): the most one read/write transfers. */
const MAX_RW_COUNT = 0x7ffff000;
/** The fd table size (RLIMIT_NOFILE's default soft limit). */
const FD_MAX = 1024;

function allocFd(p: Process): number {
  for (let fd = 3; fd < FD_MAX; fd++) if (!p.fds.has(fd)) return fd;
  return -EMFILE;
}

export function* sysOpen(p: Process, path: string, flags: number, _mode: number): K<number> {
  const k = p.enter();
  let r: number;
  const fd = allocFd(p);
  if (fd < 0) r = fd;
  else if ((flags & O_TMPFILE) === O_TMPFILE) {
    if (path !== '/tmp' && path !== '/dev/shm') r = -ENOENT;
    else if ((flags & O_ACCMODE) === O_RDONLY) r = -EINVAL;
    else {
      p.fds.set(fd, shmemFileSetup(k, `${path}/#${fd}`, 0, flags));
      r = fd;
    }
  } else if (tmpfsName(path) !== null) {
    r = yield* tmpfsOpen(p, k, tmpfsName(path)!, flags, fd);
  } else if (/^\/proc\/self\/fd\/\d+$/.test(path)) {
    // The procfs magic link: reopen the inode of an open tmpfs file with new flags.
    const of = p.fds.get(Number(path.slice(14)));
    if (of === undefined) r = -ENOENT;
    else if (of.mapping === null || of.mapping.kind !== 'shmem') r = -ENXIO;
    else {
      const nf = new File(k, of.fops, of.path, flags);
      nf.mapping = of.mapping;
      mappingGet(of.mapping);
      p.fds.set(fd, nf);
      r = fd;
    }
  } else {
    const pseudo = p.system.openPseudo(path, p, flags);
    if (pseudo !== null) {
      p.fds.set(fd, pseudo);
      r = fd;
    } else {
      const f = yield* chrdevOpen(k, path, flags);
      if (typeof f === 'number') r = f;
      else {
        p.fds.set(fd, f);
        r = fd;
      }
    }
  }
  p.cp('open');
  return r;
}

/**
 * open() of a named file on tmpfs (/tmp, /dev/shm): path_openat() with
 * O_CREAT creating the inode (shmem_get_inode; the dentry holds an inode
 * reference until unlink), -EEXIST with O_CREAT|O_EXCL on an existing
 * name, -ENOENT without O_CREAT on a missing one, O_TRUNC truncating a
 * file opened for writing. Returns the fd or -errno.
 */
function* tmpfsOpen(p: Process, k: Kernel, name: string, flags: number, fd: number): K<number> {
  const ns = k.tmpfs;
  const as = ns.get(name);
  if (as === undefined) {
    if (!(flags & O_CREAT)) return -ENOENT;
    const f = shmemFileSetup(k, name, 0, flags);
    ns.set(name, f.mapping!);
    mappingGet(f.mapping!); /* the dentry's reference */
    p.fds.set(fd, f);
    return fd;
  }
  if ((flags & O_CREAT) && (flags & O_EXCL)) return -EEXIST;
  const f = new File(k, shmemFileOperations, name, flags);
  f.mapping = as;
  mappingGet(as);
  if ((flags & O_TRUNC) && (f.fMode & FMODE_WRITE)) {
    const r = yield* shmemTruncate(k, as, 0);
    if (r < 0) {
      yield* fput(f);
      return r;
    }
  }
  p.fds.set(fd, f);
  return fd;
}

/**
 * unlink(2) on tmpfs: the name goes, the inode lives on while open files
 * or mappings reference it (shmem_unlink drops the dentry's reference).
 * -ENOENT: no such file; -EISDIR: the directory itself.
 */
export function* sysUnlink(p: Process, path: string): K<number> {
  const k = p.enter();
  let r: number;
  const name = tmpfsName(path);
  if (path === '/tmp' || path === '/tmp/' || path === '/dev/shm' || path === '/dev/shm/') r = -EISDIR;
  else if (name === null || !k.tmpfs.has(name)) r = -ENOENT;
  else {
    const as = k.tmpfs.get(name)!;
    k.tmpfs.delete(name);
    mappingPut(k, as);
    r = 0;
  }
  p.cp('unlink');
  return r;
}

export function* sysClose(p: Process, fd: number): K<number> {
  const k = p.enter();
  const f = p.fds.get(fd);
  if (f === undefined) return -EBADF;
  p.fds.delete(fd);
  yield* fput(f);
  p.cp('close');
  return 0;
}

/** read / pread (off < 0: use and advance f_pos). */
export function* sysRead(p: Process, fd: number, buf: number, count: number, off: number): K<number> {
  const k = p.enter();
  const f = p.fds.get(fd);
  let r: number;
  if (f === undefined || !(f.fMode & FMODE_READ)) r = -EBADF;
  else if (!f.fops.read) r = -EINVAL;
  else if (count < 0) r = -EINVAL;
  else if (off >= 0 && f.path.startsWith('/dev/') && !f.mapping) r = -ESPIPE;
  else {
    let pos = off >= 0 ? off : f.pos;
    const chunk = new Uint8Array(Math.min(count, 1 << 20));
    let done = 0;
    r = 0;
    while (done < count) {
      const want = Math.min(chunk.length, count - done);
      const n = f.fops.read(f, chunk.subarray(0, want), pos);
      if (n < 0) {
        r = done > 0 ? done : n;
        break;
      }
      if (n === 0) break;
      const left = yield* copyToUser(p.mm!, buf + done, chunk, n);
      done += n - left;
      pos += n - left;
      if (left > 0) {
        r = done > 0 ? done : -EFAULT;
        break;
      }
      if (n < want) break;
    }
    if (r === 0) r = done;
    if (off < 0 && r > 0) f.pos = pos;
  }
  p.cp('read');
  return r;
}

export function* sysWrite(p: Process, fd: number, buf: number, count: number, off: number): K<number> {
  if (off < 0) return yield* sysWriteAtPos(p, fd, buf, count);
  return yield* sysWriteAt(p, fd, buf, count, off);
}

function* sysWriteAt(p: Process, fd: number, buf: number, count: number, off: number): K<number> {
  const k = p.enter();
  const f = p.fds.get(fd);
  let r: number;
  if (f === undefined || !(f.fMode & FMODE_WRITE)) r = -EBADF;
  else if (!f.fops.write) r = -EINVAL;
  else if (count < 0) r = -EINVAL;
  else if (count > 0 && !(buf >= 0 && buf + count <= p.mm!.taskSize)) r = -EFAULT; /* vfs_write(): access_ok() */
  else if (count === 0) r = f.fops.write(f, new Uint8Array(0), off);
  else {
    // rw_verify_area() caps count at MAX_RW_COUNT; the data is copied from
    // user memory chunk by chunk (a fault part way gives a short write).
    const total = Math.min(count, MAX_RW_COUNT);
    const chunk = new Uint8Array(Math.min(total, 1 << 20));
    let done = 0;
    let err = 0;
    while (done < total) {
      const want = Math.min(chunk.length, total - done);
      const left = yield* copyFromUser(p.mm!, chunk, buf + done, want);
      const n = want - left;
      if (n === 0) {
        err = -EFAULT;
        break;
      }
      const w = f.fops.write(f, chunk.subarray(0, n), off + done);
      if (w < 0) {
        err = w;
        break;
      }
      done += w;
      if (w < n || left > 0) break;
    }
    r = done > 0 ? done : err;
  }
  p.cp('pwrite');
  return r;
}

/** write(2): at and advancing f_pos (a console fd has no position). */
function* sysWriteAtPos(p: Process, fd: number, buf: number, count: number): K<number> {
  const f = p.fds.get(fd);
  const pos = f?.pos ?? 0;
  const r = yield* sysWriteAt(p, fd, buf, count, pos);
  if (r > 0 && f !== undefined) f.pos = pos + r;
  return r;
}

export function* sysFtruncate(p: Process, fd: number, len: number): K<number> {
  const k = p.enter();
  const f = p.fds.get(fd);
  let r: number;
  if (f === undefined) r = -EBADF;
  else if (len < 0) r = -EINVAL;
  else if (f.mapping === null || f.mapping.kind !== 'shmem' || !(f.fMode & FMODE_WRITE)) r = -EINVAL;
  else r = yield* shmemTruncate(k, f.mapping, len);
  p.cp('ftruncate');
  return r;
}

export function* sysIoctl(p: Process, fd: number, cmd: number, arg: number): K<number> {
  const k = p.enter();
  const f = p.fds.get(fd);
  let r: number;
  if (f === undefined) r = -EBADF;
  else if (!f.fops.unlockedIoctl) r = -ENOTTY;
  else r = yield* f.fops.unlockedIoctl(f, cmd >>> 0, arg);
  p.cp('ioctl');
  return r;
}

/** The name of a file directly in /tmp or /dev/shm (tmpfs), or null. */
function tmpfsName(path: string): string | null {
  const m = /^(\/tmp|\/dev\/shm)\/([^/]+)$/.exec(path);
  if (m === null || m[2] === '.' || m[2] === '..') return null;
  return `${m[1]}/${m[2]}`;
}
