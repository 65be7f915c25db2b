//! What may be filed as evidence, as far as a file's name tells: shared by the evidence service
//! (which also reads the bytes) and the workbench (which refuses before uploading).

/// Extensions never accepted: programs and scripts a reader's machine would run.
pub const PROGRAM_EXTENSIONS: &[&str] = &[
    "exe", "dll", "com", "scr", "msi", "bat", "cmd", "ps1", "vbs", "vbe", "js", "jse", "wsf", "sh",
    "jar", "apk", "app", "elf", "so", "dylib", "bin.exe",
];
