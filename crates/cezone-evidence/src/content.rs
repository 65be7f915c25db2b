//! What an uploaded file is, from its bytes: checked against the name's extension and the
//! declared content type, so a file is stored under the type it really has. Executables are not
//! evidence and are refused, whatever they are called.

use cezone_domain::files::PROGRAM_EXTENSIONS as EXECUTABLE_EXTENSIONS;
use cezone_platform::error::ApiError;

/// Bytes of the file's beginning the detection reads.
pub const HEAD_BYTES: usize = 8192;

/// Content types each known extension may be declared with (the first is the usual one).
const KNOWN: &[(&str, &[&str])] = &[
    ("pdf", &["application/pdf"]),
    ("doc", &["application/msword"]),
    (
        "docx",
        &["application/vnd.openxmlformats-officedocument.wordprocessingml.document"],
    ),
    ("xls", &["application/vnd.ms-excel"]),
    (
        "xlsx",
        &["application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"],
    ),
    ("ppt", &["application/vnd.ms-powerpoint"]),
    (
        "pptx",
        &["application/vnd.openxmlformats-officedocument.presentationml.presentation"],
    ),
    ("wps", &["application/vnd.ms-works", "application/kswps"]),
    ("ofd", &["application/ofd"]),
    ("txt", &["text/plain"]),
    ("csv", &["text/csv", "text/plain"]),
    ("jpg", &["image/jpeg"]),
    ("jpeg", &["image/jpeg"]),
    ("png", &["image/png"]),
    ("gif", &["image/gif"]),
    ("webp", &["image/webp"]),
    ("bmp", &["image/bmp"]),
    ("tif", &["image/tiff"]),
    ("tiff", &["image/tiff"]),
    ("mp4", &["video/mp4"]),
    ("mp3", &["audio/mpeg"]),
    ("zip", &["application/zip", "application/x-zip-compressed"]),
    (
        "rar",
        &["application/vnd.rar", "application/x-rar-compressed"],
    ),
    ("7z", &["application/x-7z-compressed"]),
    ("html", &["text/html"]),
    ("htm", &["text/html"]),
];

/// Declared types that say nothing about the content.
const GENERIC: &[&str] = &["", "application/octet-stream", "binary/octet-stream"];

fn extension(file_name: &str) -> Option<String> {
    let (_, ext) = file_name.rsplit_once('.')?;
    (!ext.is_empty()).then(|| ext.to_ascii_lowercase())
}

fn known(ext: &str) -> Option<&'static [&'static str]> {
    KNOWN.iter().find(|(e, _)| *e == ext).map(|(_, t)| *t)
}

/// Whether a type detected from the bytes agrees with an extension (an Office file is a zip
/// archive to a reader that looks no further; a CSV has no signature).
fn agrees(detected: &infer::Type, ext: &str) -> bool {
    let d = detected.extension();
    d == ext
        || matches!(
            (d, ext),
            ("jpg", "jpeg") | ("tif", "tiff") | ("tiff", "tif")
        )
        || (d == "zip" && matches!(ext, "docx" | "xlsx" | "pptx" | "ofd" | "wps"))
        || (d == "doc" && matches!(ext, "xls" | "ppt" | "wps" | "msi"))
        || (matches!(d, "docx" | "xlsx" | "pptx") && ext == "zip")
}

/// Checks the file named `file_name`, declared `declared`, whose first bytes are `head`, and
/// returns the content type to store it under (the detected one, else the declared one, else
/// the extension's). Refusals name the field at fault.
pub fn check(file_name: &str, declared: &str, head: &[u8]) -> Result<String, ApiError> {
    let ext = extension(file_name);
    let declared = declared.trim().to_ascii_lowercase();
    let declared = declared.split(';').next().unwrap_or("").trim().to_string();
    let detected = infer::get(head);
    if let Some(t) = &detected
        && t.matcher_type() == infer::MatcherType::App
    {
        return Err(ApiError::invalid(
            "file_name",
            format!(
                "'{file_name}' is a program ({}); programs are not accepted as evidence",
                t.mime_type()
            ),
        ));
    }
    // Whatever the detection library needs to be sure: the signatures of Windows (MZ), ELF and
    // Mach-O programs and of scripts (#!) on their own are enough to refuse.
    const PROGRAM_SIGNATURES: &[&[u8]] = &[
        b"MZ",
        b"#!",
        b"\x7fELF",
        b"\xfe\xed\xfa\xce",
        b"\xfe\xed\xfa\xcf",
        b"\xce\xfa\xed\xfe",
        b"\xcf\xfa\xed\xfe",
        b"\xca\xfe\xba\xbe",
    ];
    if PROGRAM_SIGNATURES.iter().any(|sig| head.starts_with(sig)) {
        return Err(ApiError::invalid(
            "file_name",
            format!("'{file_name}' is a program or a script; these are not accepted as evidence"),
        ));
    }
    if let Some(e) = &ext
        && EXECUTABLE_EXTENSIONS.contains(&e.as_str())
    {
        return Err(ApiError::invalid(
            "file_name",
            format!("'.{e}' files are programs or scripts and are not accepted as evidence"),
        ));
    }
    let by_ext = ext.as_deref().and_then(known);
    if let (Some(e), Some(types)) = (&ext, by_ext)
        && !GENERIC.contains(&declared.as_str())
        && !types.contains(&declared.as_str())
    {
        return Err(ApiError::invalid(
            "content_type",
            format!(
                "'{declared}' is not the type of a .{e} file ({})",
                types.join(" or ")
            ),
        ));
    }
    if let Some(t) = &detected {
        if let Some(e) = &ext
            && by_ext.is_some()
            && !agrees(t, e)
        {
            return Err(ApiError::invalid(
                "file_name",
                format!(
                    "'{file_name}' holds {} ({}), not a .{e} file",
                    t.extension(),
                    t.mime_type()
                ),
            ));
        }
        if !GENERIC.contains(&declared.as_str())
            && declared != t.mime_type()
            && !ext.as_deref().is_some_and(|e| agrees(t, e))
        {
            return Err(ApiError::invalid(
                "content_type",
                format!(
                    "declared '{declared}', but the file holds {} ({})",
                    t.extension(),
                    t.mime_type()
                ),
            ));
        }
    }
    // Stored under what it is: the declared type where it agrees with the extension (it names
    // an Office file more exactly than its zip signature), else the detected one.
    Ok(match (&detected, by_ext) {
        (_, Some(types)) if types.contains(&declared.as_str()) => declared,
        (_, Some(types)) if GENERIC.contains(&declared.as_str()) => types[0].to_string(),
        (Some(t), _) => t.mime_type().to_string(),
        (None, _) if !GENERIC.contains(&declared.as_str()) => declared,
        _ => "application/octet-stream".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PDF: &[u8] = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj";
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const PE: &[u8] = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0";
    const ELF: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0";

    fn field(r: Result<String, ApiError>) -> String {
        let status: tonic::Status = r.unwrap_err().into();
        cezone_platform::error::violations(&status)
            .first()
            .map(|v| v.0.clone())
            .unwrap_or_default()
    }

    #[test]
    fn a_file_is_stored_under_what_it_is() {
        assert_eq!(
            check("会议记录.pdf", "application/pdf", PDF).unwrap(),
            "application/pdf"
        );
        assert_eq!(
            check("会议记录.pdf", "application/octet-stream", PDF).unwrap(),
            "application/pdf"
        );
        assert_eq!(check("照片.png", "", PNG).unwrap(), "image/png");
        assert_eq!(
            check("台帐.txt", "text/plain", b"hello").unwrap(),
            "text/plain"
        );
        assert_eq!(
            check("data.bin", "", b"\x01\x02").unwrap(),
            "application/octet-stream"
        );
        assert_eq!(check("scan", "", PDF).unwrap(), "application/pdf");
    }

    #[test]
    fn mismatches_and_programs_are_refused_by_field() {
        // Declared HTML for a .txt.
        assert_eq!(
            field(check("notes.txt", "text/html", b"<script>")),
            "content_type"
        );
        // A Windows program named .pdf, an ELF named .docx, a script.
        assert_eq!(field(check("通知.pdf", "application/pdf", PE)), "file_name");
        assert_eq!(field(check("a.docx", "", ELF)), "file_name");
        assert_eq!(
            field(check("run.txt", "text/plain", b"#!/bin/sh\nrm -rf /")),
            "file_name"
        );
        assert_eq!(field(check("setup.exe", "", b"hello")), "file_name");
        // A PDF named and declared a PNG; a PNG declared a PDF without an extension.
        assert_eq!(field(check("a.png", "image/png", PDF)), "file_name");
        assert_eq!(field(check("a", "application/pdf", PNG)), "content_type");
    }
}
