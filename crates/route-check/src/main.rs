fn main() -> std::process::ExitCode {
    homelab_core::exit::main(route_check::run)
}
