fn main() -> std::process::ExitCode {
    homelab_core::exit::main(log_tail_ship::run)
}
