fn main() -> std::process::ExitCode {
    homelab_core::exit::main(ctr_stats::run)
}
