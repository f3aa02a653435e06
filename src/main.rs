fn main() -> std::process::ExitCode {
    decnet_webhook::cli::run()
}
