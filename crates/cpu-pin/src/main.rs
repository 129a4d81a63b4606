fn main() -> std::process::ExitCode {
    homelab_core::exit::main(cpu_pin::run)
}
