#!/usr/bin/env bash
# Build -- or resume -- the Qwen2.5-Coder GSM8K bank (issue 10). Rerun the same command to
# continue where the last run stopped: every step skips the records the bank already holds,
# and refuses to resume with other sampling settings.
#
#   nohup nice -n 19 bash bench/results/qwen_gsm8k/build.sh > /tmp/qwen_build.log 2>&1 &
#
# Questions go in chunks, each chunk complete (small samples + greedy, large samples + greedy,
# the small model's budget-forced chains at 512, 1024, 2048) before the next starts, so a
# partial bank is a smaller but whole experiment: every analysis runs on the questions it holds.
set -euo pipefail
cd "$(dirname "$0")/../../.."
TTS=${TTS:-.venv/bin/tts}
BANK=bench/results/qwen_gsm8k/bank
# Chains went 16 questions (32 chains) per batch for 400-534 (2,048 tokens: 400-511) and 28 (56
# chains) after, so that the forced rounds, which shrink as chains finish, keep more in flight.
CHAIN_BATCH=${CHAIN_BATCH:-28}
# The first chunk is small so that every analysis has a few whole questions early.
CHUNKS=${CHUNKS:-"400:16 400:80 480:55 535:55 590:55 645:55"}

for chunk in $CHUNKS; do
    QUESTIONS=(--questions ../shared/data/gsm8k/test.jsonl --start "${chunk%:*}" --n "${chunk#*:}"
               --seed 0 --gzip)
    "$TTS" bank build "$BANK" --model small --role small "${QUESTIONS[@]}" \
        --samples 16 --greedy --temperature 0.7 --max-tokens 512 --batch 8
    "$TTS" bank build "$BANK" --model large --role large "${QUESTIONS[@]}" \
        --samples 4 --greedy --temperature 0.7 --max-tokens 512 --batch 16
    "$TTS" bank build "$BANK" --model small --role small "${QUESTIONS[@]}" \
        --samples 0 --chains 2 --chain-lengths 512,1024,2048 --answer-tokens 32 --max-waits 16 \
        --temperature 0.7 --batch "$CHAIN_BATCH"
done
