fn main() -> std::process::ExitCode {
    oi_supervisor::cli::main()
}
