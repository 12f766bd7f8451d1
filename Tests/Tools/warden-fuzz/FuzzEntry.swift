import FrontDoorFuzz

// Built once per process; a `let`, never mutated.
private let frontDoor: FrontDoor = {
    do { return try FrontDoor() } catch { fatalError("cannot build the shim's registry: \(error)") }
}()

/// libFuzzer calls this with each input (scripts/fuzz.sh).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var tally = FrontDoor.Tally()
    frontDoor.run(Array(UnsafeBufferPointer(start: data, count: size)), into: &tally)
    return 0
}
