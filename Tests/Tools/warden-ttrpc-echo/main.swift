// warden-ttrpc-echo SOCKET: serves the interop echo service on SOCKET until killed.
// Used to measure an idle ttrpc server process (RSS/PSS) without the rest of the shim.
import LinuxSys
import TTRPC
import TTRPCEchoService

let arguments = CommandLine.arguments
guard arguments.count == 2 else {
    Console.error("usage: warden-ttrpc-echo SOCKET")
    exit(2)
}
let server = TTRPCServer(registry: EchoService.registry())
do {
    try server.listen(path: arguments[1])
} catch {
    Console.error("warden-ttrpc-echo: \(error)")
    exit(1)
}
Console.output("listening")
while true {
    try await Task.sleep(for: .seconds(3600))
}
