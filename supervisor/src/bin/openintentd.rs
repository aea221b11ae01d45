fn main() -> std::process::ExitCode {
    oi_supervisor::daemon::main()
}
