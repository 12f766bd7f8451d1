// fake-runsc: a test double with runsc's CLI and process model (design.md §4).
//
//   create --bundle B --pid-file F ID   daemonizes a "sandbox" and a "gofer" (both re-parent
//                                        to the caller's subreaper once create exits), writes
//                                        the sandbox pid to F, state to <root>/ID/state.json
//   start ID                             the sandbox runs the bundle's process.args on the host
//                                        with create's stdio; it exits with their exit status
//   state | kill [--all] ID SIG | wait ID | delete [--force] ID | ps --format=json ID |
//   pause ID | resume ID | events --stats ID
//
// Faults, named in <root>/faults or WARDEN_FAKE_RUNSC_FAULTS (comma or newline separated):
//   hang-<verb>       that verb never returns (hang-kill, hang-delete, hang-wait, hang-state…)
//   crash-on-create   create exits 1 after starting the sandbox and gofer (they are left behind)
//   fail-start        start exits 1; the container stays "created"
//   slow-start        start takes 2 s
//   ignore-sigterm    the container process ignores SIGTERM
//   orphan-gofer      the gofer does not exit with the sandbox
import FakeRunscCore
import LinuxSys

exit(FakeRunsc.main(Array(CommandLine.arguments)))
