//! The control plane (`sluice serve`) driven as AWS users drive it: the AWS CLI, boto3, and pipe
//! files in `--pipes-dir`.

mod aws_cli;
mod boto3;
mod hostile;
mod https;
mod pipes_dir;
