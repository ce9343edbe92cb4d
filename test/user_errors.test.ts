// SPDX-License-Identifier: GPL-2.0-only
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { System } from '../src/user/system.js';
import { type Process, ProcessSignal, DeadProcessError, WIFSIGNALED, WTERMSIG, WIFEXITED, WEXITSTATUS, WNOHANG } from '../src/user/process.js';
import { PROT_NONE, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS } from '../src/kernel/mm/mmap.js';
import { O_RDONLY, O_RDWR, O_TMPFILE, registerChrdev, unregisterChrdev, type File } from '../src/kernel/fs/chardev.js';
import { copyFromUser, copyToUser } from '../src/kernel/uaccess.js';
import { EBADF, ECHILD, EEXIST, EFAULT, EINVAL, ENOTTY, ESRCH, ENOENT } from '../src/kernel/errno.js';
import type { K } from '../src/kernel/sched/sched.js';

const RW = PROT_READ | PROT_WRITE;
const PA = MAP_PRIVATE | MAP_ANONYMOUS;
const PG = 4096;

function setup(): { s: System; p: Process } {
  const s = new System({ ramBytes: 256 << 20, checked: true });
  return { s, p: s.spawn('t') };
}

test('SIGSEGV: unmapped, PROT_NONE, write to read-only; the process dies', () => {
  const { s, p } = setup();
  const cases: Array<[string, (c: Process) => void]> = [
    ['unmapped read', (c) => c.load8(0x1000)],
    ['non-canonical', (c) => c.load8(2 ** 48)],
    ['PROT_NONE', (c) => {
      const a = c.mmap(0, PG, PROT_NONE, PA);
      c.load32(a);
    }],
    ['write to read-only', (c) => {
      const a = c.mmap(0, PG, PROT_READ, PA);
      assert.equal(c.load8(a), 0);
      c.store8(a, 1);
    }],
    ['after munmap', (c) => {
      const a = c.mmap(0, PG, RW, PA);
      c.store8(a, 1);
      c.munmap(a, PG);
      c.load8(a);
    }],
  ];
  for (const [name, body] of cases) {
    const c = s.spawn(name);
    let sig: ProcessSignal | null = null;
    try {
      body(c);
    } catch (e) {
      if (e instanceof ProcessSignal) sig = e;
      else throw e;
    }
    assert.ok(sig !== null, `${name}: no signal`);
    assert.equal(sig!.signo, 11, name);
    assert.equal(c.alive, false);
    assert.ok(WIFSIGNALED(c.status));
    assert.equal(WTERMSIG(c.status), 11);
    assert.throws(() => c.mmap(0, PG, RW, PA), DeadProcessError);
  }
  assert.equal(s.kernel.printk.warnings.length, 0);
  void p;
});

test('wait status encoding, kill and waitpid errors', () => {
  const { p } = setup();
  assert.equal(p.kill(9999, 9), -ESRCH);
  assert.equal(p.kill(p.pid, -1), -EINVAL);
  assert.equal(p.kill(p.pid, 65), -EINVAL);
  assert.equal(p.kill(p.pid, 0), 0);
  assert.equal(p.waitpid(12345).pid, -ECHILD);
  const c1 = p.fork((c) => c.exit(42));
  const st = p.waitpid(c1);
  assert.equal(st.pid, c1);
  assert.ok(WIFEXITED(st.status));
  assert.equal(WEXITSTATUS(st.status), 42);
  assert.equal(p.waitpid(c1).pid, -ECHILD, 'already reaped');
  const c2 = p.fork(() => undefined);
  assert.deepEqual(p.waitpid(c2, WNOHANG), { pid: 0, status: 0 });
  assert.equal(p.kill(c2, 17), 0, 'SIGCHLD is ignored by default');
  assert.deepEqual(p.waitpid(c2, WNOHANG), { pid: 0, status: 0 });
  assert.equal(p.kill(c2, 15), 0);
  const st2 = p.waitpid(-1);
  assert.equal(st2.pid, c2);
  assert.ok(WIFSIGNALED(st2.status));
  assert.equal(WTERMSIG(st2.status), 15);
  assert.throws(() => p.kill(p.pid, 9), ProcessSignal);
  assert.equal(p.alive, false);
});

test('fd errors: bad fd, ENOTTY, EFAULT from bad user buffers', () => {
  const { p } = setup();
  assert.equal(p.ioctl(55, 1, 0), -EBADF);
  assert.equal(p.read(55, 0, 1), -EBADF);
  assert.equal(p.ftruncate(55, 0), -EBADF);
  assert.equal(p.mmap(0, PG, RW, MAP_PRIVATE, 55, 0), -EBADF);
  const fd = p.open('/tmp', O_TMPFILE | O_RDWR);
  assert.equal(p.ioctl(fd, 0x1234, 0), -ENOTTY);
  assert.equal(p.pwrite(fd, 0x1000, 16, 0), -EFAULT, 'unmapped source buffer');
  const buf = p.malloc(PG);
  p.fill(buf, 16, 1);
  assert.equal(p.pwrite(fd, buf, 16, 0), 16);
  assert.equal(p.pread(fd, 0x1000, 16, 0), -EFAULT, 'unmapped destination');
  const ro = p.mmap(0, PG, PROT_READ, PA);
  assert.equal(p.pread(fd, ro, 16, 0), -EFAULT, 'read-only destination');
  assert.ok(p.alive, 'a bad syscall buffer is an errno, not a signal');
  const pm = p.open('/proc/self/pagemap', O_RDONLY);
  assert.equal(p.pread(pm, buf, 8, 4), -EINVAL, 'pagemap offset not a multiple of 8');
  assert.equal(p.pread(pm, buf, 8, 0), 8);
});

test('pseudo files: meminfo, THP sysfs, pagemap', () => {
  const { p } = setup();
  assert.equal(p.readFileText('/sys/kernel/mm/transparent_hugepage/hpage_pmd_size'), '2097152\n');
  assert.equal(p.readFileText('/sys/kernel/mm/transparent_hugepage/enabled'), 'always [madvise] never\n');
  const mi = p.readFileText('/proc/meminfo') as string;
  assert.match(mi, /Hugepagesize:\s+2048 kB/);
  assert.match(mi, /HugePages_Free:\s+8/);
  const a = p.mmap(0, PG, RW, PA);
  assert.equal(p.pagemap(a) >> 63n, 0n, 'not present yet');
  p.store8(a, 1);
  const e = p.pagemap(a);
  assert.equal(e >> 63n, 1n, 'present');
  assert.equal((e >> 56n) & 1n, 1n, 'exclusively mapped');
  assert.equal((e >> 61n) & 1n, 0n, 'anonymous');
  assert.equal(p.open('/proc/4242/pagemap', O_RDONLY), -ENOENT);
});

test('chardev: open/ioctl/release, copy_from_user/copy_to_user', () => {
  const { s, p } = setup();
  const k = s.kernel;
  const log: string[] = [];
  const fops = {
    *open(f: File): K<number> {
      log.push('open');
      f.privateData = { n: 0 };
      return 0;
    },
    *release(): K<void> {
      log.push('release');
    },
    *unlockedIoctl(_f: File, cmd: number, arg: number): K<number> {
      const mm = k.current.mm!;
      const b = new Uint8Array(8);
      if ((yield* copyFromUser(mm, b, arg, 8)) !== 0) return -EFAULT;
      for (let i = 0; i < 8; i++) b[i] += cmd;
      if ((yield* copyToUser(mm, arg, b, 8)) !== 0) return -EFAULT;
      return 0;
    },
  };
  assert.equal(registerChrdev(k, '/dev/testdev', fops), 0);
  assert.equal(registerChrdev(k, '/dev/testdev', fops), -EEXIST);
  const fd = p.open('/dev/testdev', O_RDWR);
  assert.ok(fd >= 0);
  const buf = p.malloc(PG);
  p.writeBytes(buf, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
  assert.equal(p.ioctl(fd, 10, buf), 0);
  assert.deepEqual([...p.readBytes(buf, 8)], [11, 12, 13, 14, 15, 16, 17, 18]);
  assert.equal(p.ioctl(fd, 1, 0x2000), -EFAULT);
  // A forked child shares the open file: release only after both closed.
  const pid = p.fork((c) => c.exit(0));
  p.waitpid(pid);
  assert.deepEqual(log, ['open']);
  p.exit(0);
  assert.deepEqual(log, ['open', 'release']);
  unregisterChrdev(k, '/dev/testdev');
  const q = s.spawn('q');
  assert.equal(q.open('/dev/testdev', O_RDWR), -ENOENT);
});

test('runThreads: concurrent munmap and reads under the scheduler', () => {
  const { s, p } = setup();
  for (let seed = 1; seed <= 20; seed++) {
    const a = p.mmap(0, 4 * PG, RW, PA);
    p.fill(a, 4 * PG, 5);
    const res = p.runThreads(seed, [
      function* () {
        return yield* p.sys.munmap(a, 4 * PG);
      },
      function* () {
        const fd = yield* p.sys.open('/tmp', O_TMPFILE | O_RDWR);
        const r = yield* p.sys.pwrite(fd, a, 4 * PG, 0);
        yield* p.sys.close(fd);
        return r;
      },
    ]);
    assert.equal(res[0], 0);
    assert.ok(res[1] === 4 * PG || res[1] === -EFAULT || (typeof res[1] === 'number' && res[1] > 0), `seed ${seed}: ${res[1]}`);
  }
  assert.equal(s.kernel.printk.warnings.length, 0);
});
