fn main() -> std::process::ExitCode {
    homelab_core::exit::main(backup_snap::run)
}
