@_exported import TTRPCEchoService
@_exported import Deadlines
