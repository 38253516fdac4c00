// seccomp_exec: applies the seccomp side of a systemd unit's hardening, as
// the service manager would just before exec, then execs the program. Used
// by the hardening proof (tests/privileged/hardening_test.cpp), which
// resolves the unit's settings into these arguments:
//
//   seccomp_exec --allow FILE [--families N,N,...] [--mdwe] [--lock-personality]
//                [--restrict-namespaces] -- PROGRAM ARGS...
//
// --allow FILE: the system calls allowed, one name a line (the unit's
//   SystemCallFilter= resolved); any other kills the process (systemd's
//   default action), as does a call from a non-native ABI
//   (SystemCallArchitectures=native).
// --families: socket() with any other address family fails with
//   EAFNOSUPPORT (RestrictAddressFamilies=).
// --mdwe: mappings both writable and executable, and making memory
//   executable later, fail with EPERM (MemoryDenyWriteExecute=).
// --lock-personality: personality() may only keep the current one
//   (LockPersonality=).
// --restrict-namespaces: unshare/setns/clone into new namespaces fail with
//   EPERM (RestrictNamespaces=yes).
// Each is its own filter, as systemd installs them; the kernel applies the
// strictest answer. Needs no_new_privs or CAP_SYS_ADMIN.
#include <errno.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/shm.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "seccomp_exec: %s\n", what.c_str());
  std::exit(125);
}

void check(int rc, const std::string& what) {
  if (rc < 0) die(what + ": " + std::strerror(-rc));
}

void load(scmp_filter_ctx ctx, const char* what) {
  check(seccomp_load(ctx), std::string("loading the ") + what + " filter");
  seccomp_release(ctx);
}

void allowList(const std::string& path) {
  std::ifstream in(path);
  if (!in) die("cannot read " + path);
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
  if (!ctx) die("seccomp_init");
  size_t allowed = 0;
  std::string name;
  while (in >> name) {
    // Names of other architectures (arm_fadvise64_64...) resolve to
    // negative pseudo numbers: systemd skips those too.
    const int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr < 0) continue;
    check(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0), "allowing " + name);
    ++allowed;
  }
  if (allowed == 0) die("no system call allowed in " + path);
  load(ctx, "system-call");
}

void families(const std::string& list) {
  std::set<int> allowed;
  std::stringstream ss(list);
  for (std::string n; std::getline(ss, n, ',');)
    allowed.insert(std::atoi(n.c_str()));
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  constexpr int kMaxFamily = 64;
  for (int f = 0; f < kMaxFamily; ++f)
    if (!allowed.count(f))
      check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                             SCMP_A0(SCMP_CMP_EQ, scmp_datum_t(f))),
            "socket family rule");
  check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                         SCMP_A0(SCMP_CMP_GE, kMaxFamily)),
        "socket family rule");
  load(ctx, "address-family");
}

void memoryDenyWriteExecute() {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  const auto deny = SCMP_ACT_ERRNO(EPERM);
  check(
      seccomp_rule_add(ctx, deny, SCMP_SYS(mmap), 1,
                       SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC | PROT_WRITE, PROT_EXEC | PROT_WRITE)),
      "mmap rule");
  check(seccomp_rule_add(ctx, deny, SCMP_SYS(mprotect), 1,
                         SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC)),
        "mprotect rule");
  check(seccomp_rule_add(ctx, deny, SCMP_SYS(pkey_mprotect), 1,
                         SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC)),
        "pkey_mprotect rule");
  check(seccomp_rule_add(ctx, deny, SCMP_SYS(shmat), 1,
                         SCMP_A2(SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC)),
        "shmat rule");
  load(ctx, "write-xor-execute");
}

void lockPersonality() {
  const int current = personality(0xffffffff);
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
                         SCMP_A0(SCMP_CMP_NE, uint64_t(current))),
        "personality rule");
  // Querying (0xffffffff) stays allowed.
  load(ctx, "personality");
}

void restrictNamespaces() {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  const auto deny = SCMP_ACT_ERRNO(EPERM);
  for (uint64_t flag : {CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
                        CLONE_NEWNET, CLONE_NEWCGROUP}) {
    check(
        seccomp_rule_add(ctx, deny, SCMP_SYS(unshare), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)),
        "unshare rule");
    check(seccomp_rule_add(ctx, deny, SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)),
          "clone rule");
  }
  check(seccomp_rule_add(ctx, deny, SCMP_SYS(setns), 0), "setns rule");
  // clone3 passes its flags in memory, out of a filter's reach: systemd
  // makes it fail with ENOSYS so that libc falls back to clone.
  check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0), "clone3 rule");
  load(ctx, "namespace");
}

}  // namespace

int main(int argc, char** argv) {
  std::string allowFile, familyList;
  bool mdwe = false, lockPers = false, noNamespaces = false;
  int i = 1;
  for (; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") break;
    if (a == "--allow" && i + 1 < argc) {
      allowFile = argv[++i];
    } else if (a == "--families" && i + 1 < argc) {
      familyList = argv[++i];
    } else if (a == "--mdwe") {
      mdwe = true;
    } else if (a == "--lock-personality") {
      lockPers = true;
    } else if (a == "--restrict-namespaces") {
      noNamespaces = true;
    } else {
      die("unknown argument " + a);
    }
  }
  if (i + 1 >= argc || allowFile.empty()) die("usage: seccomp_exec --allow FILE [...] -- PROGRAM");
  // The narrower filters first: the allow-list must still let them load.
  if (!familyList.empty()) families(familyList);
  if (mdwe) memoryDenyWriteExecute();
  if (lockPers) lockPersonality();
  if (noNamespaces) restrictNamespaces();
  allowList(allowFile);
  execv(argv[i + 1], argv + i + 1);
  die(std::string("exec ") + argv[i + 1] + ": " + std::strerror(errno));
}
