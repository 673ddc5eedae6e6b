"""Attachments: downloads the files customers send into MongoDB GridFS, retrying what fails for a while."""
