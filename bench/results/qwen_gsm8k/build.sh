#!/usr/bin/env bash
# Build -- or resume -- the Qwen2.5-Coder GSM8K bank (issue 10). Rerun the same command to
# continue where the last run stopped: every step skips the records the bank already holds,
# and refuses to resume with other sampling settings.
#
#   nohup nice -n 19 bash bench/results/qwen_gsm8k/build.sh > /tmp/qwen_build.log 2>&1 &
#
# Order keeps a partial bank useful: small samples for all 300 questions, then the large
# model (4 samples, then greedy), then the small model's budget-forced chains (1024, then 2048).
set -euo pipefail
cd "$(dirname "$0")/../../.."
TTS=${TTS:-.venv/bin/tts}
BANK=bench/results/qwen_gsm8k/bank
QUESTIONS=(--questions ../shared/data/gsm8k/test.jsonl --start 400 --n 300 --seed 0 --gzip)

"$TTS" bank build "$BANK" --model small --role small "${QUESTIONS[@]}" \
    --samples 16 --temperature 0.7 --max-tokens 512 --batch 8
"$TTS" bank build "$BANK" --model large --role large "${QUESTIONS[@]}" \
    --samples 4 --greedy --temperature 0.7 --max-tokens 512 --batch 16
"$TTS" bank build "$BANK" --model small --role small "${QUESTIONS[@]}" \
    --samples 0 --chains 2 --chain-lengths 1024,2048 --answer-tokens 32 --max-waits 16 \
    --temperature 0.7 --batch 16
