@_exported import TTRPCEchoService
