// SPDX-License-Identifier: GPL-2.0-only
/**
 * Character devices and open files (fs/char_dev.c, fs/file_table.c,
 * include/linux/fs.h), reduced to what drivers and the user layer need.
 *
 * A driver registers `FileOperations` under a path ("/dev/hmm_dmirror0");
 * open(2) of that path creates a `File` (struct file) whose `fops` are the
 * driver's, calls ->open(), and the fd table holds the file. The last
 * fput() calls ->release(). Files of tmpfs inodes (O_TMPFILE) use the shmem
 * file operations of mm/shmem.ts and carry their AddressSpace in `mapping`.
 *
 * Locking: the registry is protected by the (implicit) chrdevs lock; a File's
 * fCount is atomic. ->open/->release/->unlocked_ioctl may sleep (K); ->mmap
 * runs with mmap_lock held for write (as call_mmap() in mmap_region()).
 */
import type { Kernel } from '../kernel.js';
import type { K } from '../sched/sched.js';
import type { AddressSpace, Vma } from '../mm/mm_types.js';
import { EEXIST, ENOENT } from '../errno.js';
import { KernelBug } from '../printk.js';

/* open(2) flags (x86-64 values). */
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_ACCMODE = 3;
export const O_CREAT = 0x40;
export const O_EXCL = 0x80;
export const O_TRUNC = 0x200;
export const O_APPEND = 0x400;
export const O_NONBLOCK = 0x800;
export const O_DIRECTORY = 0x10000;
export const O_CLOEXEC = 0x80000;
export const __O_TMPFILE = 0x400000;
export const O_TMPFILE = __O_TMPFILE | O_DIRECTORY;

/* f_mode bits */
export const FMODE_READ = 0x1;
export const FMODE_WRITE = 0x2;

/** struct file_operations (the members the model uses). */
export interface FileOperations {
  /** Module / driver name, for messages. */
  owner?: string;
  /** ->open(inode, file): 0 or -errno. */
  open?(file: File): K<number>;
  /** ->release(inode, file): the last reference to the file is gone. */
  release?(file: File): K<void>;
  /** ->unlocked_ioctl(file, cmd, arg): arg is a user address (or a plain number). */
  unlockedIoctl?(file: File, cmd: number, arg: number): K<number>;
  /**
   * ->mmap(file, vma): set vma->vm_ops etc. Called with mmap_lock held for
   * write. 0 or -errno (the mapping is then not created).
   */
  mmap?(file: File, vma: Vma): number;
  /** ->read(file, buf, count, pos) into a kernel buffer: bytes read or -errno. */
  read?(file: File, dst: Uint8Array, off: number): number;
  /** ->write(file, buf, count, pos) from a kernel buffer: bytes written or -errno. */
  write?(file: File, src: Uint8Array, off: number): number;
}

/** struct file */
export class File {
  /** private_data: the driver's per-open state. */
  privateData: unknown = null;
  /** f_count: references (fd table entries, fork, mapped VMAs hold none in the model). */
  fCount = 1;
  /** f_mode: FMODE_READ / FMODE_WRITE from the open flags. */
  fMode: number;
  /** f_pos */
  pos = 0;
  /** f_mapping: the page cache of a tmpfs/hugetlbfs inode, else null. */
  mapping: AddressSpace | null = null;
  constructor(
    readonly kernel: Kernel,
    public fops: FileOperations,
    readonly path: string,
    /** f_flags: the open(2) flags. */
    readonly fFlags: number,
  ) {
    const acc = fFlags & O_ACCMODE;
    this.fMode = acc === O_RDONLY ? FMODE_READ : acc === O_WRONLY ? FMODE_WRITE : FMODE_READ | FMODE_WRITE;
  }
}

/**
 * register_chrdev() + device node creation: make `path` openable with
 * `fops`. Returns 0, or -EEXIST if the path is taken.
 */
export function registerChrdev(k: Kernel, path: string, fops: FileOperations): number {
  if (k.chardevs.has(path)) return -EEXIST;
  k.chardevs.set(path, fops);
  return 0;
}

/** unregister_chrdev(): the path can no longer be opened (open files stay valid). */
export function unregisterChrdev(k: Kernel, path: string): void {
  k.chardevs.delete(path);
}

/** The registered fops of a path, or null. */
export function lookupChrdev(k: Kernel, path: string): FileOperations | null {
  return (k.chardevs.get(path) as FileOperations | undefined) ?? null;
}

/**
 * chrdev_open() / do_dentry_open(): create a File for a registered path and
 * call ->open(). Returns the File or -errno (-ENOENT: no such device).
 */
export function* chrdevOpen(k: Kernel, path: string, flags: number): K<File | number> {
  const fops = lookupChrdev(k, path);
  if (fops === null) return -ENOENT;
  const file = new File(k, fops, path, flags);
  if (fops.open) {
    const r = yield* fops.open(file);
    if (r < 0) return r;
  }
  return file;
}

/** get_file(): one more reference (dup, fork). */
export function getFile(file: File): File {
  if (file.fCount <= 0) throw new KernelBug('KASAN', `get_file on a released file ${file.path}`);
  file.fCount++;
  return file;
}

/**
 * fput(): drop a reference; the last one calls ->release() (in the kernel
 * from task_work on return to user space; here synchronously).
 */
export function* fput(file: File): K<void> {
  if (file.fCount <= 0) throw new KernelBug('REFCOUNT', `fput: f_count underflow on ${file.path}`);
  if (--file.fCount > 0) return;
  if (file.fops.release) yield* file.fops.release(file);
}
