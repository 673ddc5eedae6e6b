"""Dispatcher: delivers operator replies through each channel's provider, retrying and parking what fails."""
