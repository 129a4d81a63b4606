fn main() -> std::process::ExitCode {
    homelab_core::exit::main(pi_thermal::run)
}
