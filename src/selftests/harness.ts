// SPDX-License-Identifier: GPL-2.0-only
/**
 * A kselftest_harness.h for the model.
 *
 * The kernel's harness (tools/testing/selftests/kselftest_harness.h) runs
 * every TEST_F once per FIXTURE_VARIANT, each in a fork()ed child: setup,
 * body, teardown, exit. Here each case gets a fresh simulated machine
 * (`new System(cfg)`) and one process spawned on it; the case ends with that
 * process exiting (exit_mmap), as the kernel's test child does.
 *
 * Output is kselftest's TAP:
 *
 *     TAP version 13
 *     1..76
 *     # Starting 76 tests from 4 test cases.
 *     #  RUN           hmm.hmm_device_private.open_close ...
 *     #            OK  hmm.hmm_device_private.open_close
 *     ok 1 hmm.hmm_device_private.open_close
 *     ...
 *     # PASSED: 76 / 76 tests passed.
 *     # Totals: pass:76 fail:0 xfail:0 xpass:0 skip:0 error:0
 *
 * ASSERT_* / EXPECT_* report a failure as kselftest's __TH_LOG does,
 * `# <file>:<line>:<test>:Expected <a> (<val>) <op> <b> (<val>)`, with the
 * file and line of the assertion in the port (from the call stack, mapped
 * through the emitted source map to the .ts source) and the expression text
 * read back from that source line. ASSERT_* ends the test (kselftest
 * longjmp()s / abort()s); EXPECT_* marks it failed and continues.
 *
 * The harness itself does not depend on the simulated kernel: the machine
 * factory and the "process died" classification are passed in by the suite,
 * so it can be unit-tested on its own.
 *
 * One concept per file under harness/: metadata.ts (the running test's
 * struct __test_metadata, TH_LOG, the exceptions that end a body),
 * callsite.ts (stack frame -> source map -> .ts line + argument text),
 * asserts.ts (ASSERT_* / EXPECT_*, SKIP, ksft_exit_fail_msg, asChild),
 * results.ts (case and suite results), tap.ts (TAP output), filter.ts
 * (glob selection), suite.ts (fixtures, variants, tests, the runner). This
 * file re-exports them.
 */
export * from './harness/metadata.js';
export * from './harness/callsite.js';
export * from './harness/asserts.js';
export * from './harness/results.js';
export * from './harness/tap.js';
export * from './harness/filter.js';
export * from './harness/suite.js';
