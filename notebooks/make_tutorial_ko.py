"""Builds notebooks/tutorial_ko.ipynb from notebooks/tutorial.ipynb: the same
code cells (the Keras notebook's steps), the text in Korean, and a last part
that trains on the Korean reviews the repository ships."""
import pathlib

import nbformat

HERE = pathlib.Path(__file__).parent

nb = nbformat.read(HERE / "tutorial.ipynb", as_version=4)
cells = nb.cells
md = {
0: """# IMDB 감성 분석: SimpleRNN과 LSTM — 케라스 노트북을 JAX/Flax로

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/flax-sentiment/flax-sentiment/blob/main/notebooks/tutorial_ko.ipynb)
(배지는 `flax-sentiment/flax-sentiment`을 가리킵니다. 내 저장소를 쓰려면 배지와 아래 `REPO`를 바꾸세요)

잘 알려진 케라스 튜토리얼과 같은 순서입니다 — 1-1 IMDB 불러오기, 1-2 리뷰 패딩,
2 `Embedding → SimpleRNN | LSTM → Dense` 만들기, 3 손실 함수·옵티마이저·평가 지표 정하기,
4 학습과 평가 — 이를 함수형 JAX/Flax로 씁니다: `flax.linen` 모듈, `jax.jit`으로 컴파일한
순수 함수 `train_step`, `optax`의 Adam, 그리고 평범한 파이썬 에폭 루프.
마지막 5장에서는 같은 도구로 **한국어 영화 리뷰**를 학습합니다. CPU, GPU, TPU 런타임에서 그대로 돌아갑니다.

**크기**: 기본값은 리뷰 2,000개로 2 에폭 학습합니다(노트북 CPU에서 몇 분).
노트북 전체 실험(리뷰 25,000개, 5 에폭)은 아래에서 `SMALL = False`로 바꾸세요.""",
4: """## 1-1. IMDB 불러오기, 리뷰 하나 살펴보기

어휘는 *학습* 리뷰에서 가장 많이 나온 10,000 − 2개의 단어입니다(id 0은 패딩,
1은 모르는 단어). `load_data`는 `tensorflow-datasets`로 IMDB를 읽고, 한 번만 토큰화해
(캐시에 저장) 리뷰마다 토큰 id를 돌려줍니다.""",
6: """## 1-2. 모든 리뷰를 같은 길이로 패딩(자르기)

케라스의 `pad_sequences(..., padding="pre", truncating="pre")`와 같습니다: 짧은 리뷰는
앞에 0을 채우고, 긴 리뷰는 앞부분을 잘라냅니다. `load_data`가 이미 모든 리뷰에 적용했고,
여기서는 같은 함수를 작은 예에 써 봅니다.""",
8: """## 2. 신경망 만들기

Flax에서 모델은 `nn.Module`입니다. `nn.RNN`이 셀(`nn.SimpleCell` 또는 `nn.LSTMCell`)을
시간 축을 따라 돌리고, 마지막 스텝의 상태가 Dense 층으로 갑니다. 이 몇 줄이 케라스
노트북의 모델이며, 파라미터 수도 케라스와 똑같습니다.""",
10: """패키지의 모델은 파라미터(이름과 모양)가 같고 같은 로짓을 계산하지만, 순환 부분을 더
빠르게 돌립니다(입력 투영을 시간 루프 밖으로 빼고, 역전파를 직접 씀). 케라스의
`model.summary()` 같은 요약:""",
12: """## 3. 손실 함수, 옵티마이저, 평가 지표 (케라스의 `compile`)

로짓에 대한 이진 교차 엔트로피(시그모이드는 손실 안에 있음), 케라스와 같은 학습률과
epsilon의 Adam, 정확도. 학습 스텝은 상태와 배치의 순수 함수이고 `jax.jit`이 컴파일합니다.
(패키지의 `train_step`도 이것에, 마지막 부분 배치의 빈 행을 위한 가중치가 더해진 것입니다.)""",
14: """## 4. 학습 (케라스의 `fit`), 에폭마다 테스트 세트로 평가

에폭 루프: `chunk` 하나는 32개 리뷰짜리 배치 `steps_per_call`개이고, 컴파일된 호출 한 번
(`lax.scan`으로 돌린 학습 스텝)으로 실행됩니다. 에폭마다 시드에서 새로 섞습니다.
`api.train_epoch(state, feeds, epoch)`가 이 루프입니다.""",
16: """## 학습 곡선""",
18: """## 직접 쓴 리뷰 예측하기""",
20: """## 어떤 단어가 점수를 움직였나

임베딩에 대한 적분 그래디언트(integrated gradients): 임베딩이 모두 0인 기준점에서 리뷰까지
로짓이 변한 양을 단어마다 나눈 몫입니다(양수는 *긍정* 쪽). 명령줄에서는
`flax-sentiment predict --workdir W --explain "..."`가 같은 일을 합니다.""",
}
for i, text in md.items():
  assert cells[i].cell_type == "markdown", i
  cells[i].source = text
# The last cell ("The six experiments, and more") becomes part 5's lead-in.
assert cells[22].cell_type == "markdown"
cells[2].source = cells[2].source.replace(
    "# The size switch, and which of the notebook's six experiments to run.",
    "# 크기 스위치, 그리고 노트북의 여섯 실험 중 무엇을 돌릴지.").replace(
    "# False: all 25,000 train and test reviews, 5 epochs",
    "# False: 학습·테스트 리뷰 25,000개 전부, 5 에폭") + (
    "\nKO_EPOCHS = 8        # 5장: 한국어 리뷰로 학습할 에폭 수\n")
cells[22].source = """## 여섯 실험, 그리고 그 이상

케라스 노트북은 SimpleRNN과 LSTM을 64, 512, 1024 토큰으로 비교합니다. 명령줄에서는
중단돼도 이어지는 체크포인트, 진행 막대, TensorBoard와 함께 돌립니다:

```bash
python run.py --config configs/lstm.py --config.seq_len=512     # 실험 하나
bash benchmarks/six_experiments.sh runs 3                       # 여섯 개 모두, 시드 0-2
flax-sentiment predict --workdir runs/lstm512 "Great film."
```

## 5. 한국어 리뷰로 학습하기

IMDB의 영어 단어 규칙(`[a-z0-9']`)은 한글을 한 글자도 읽지 못합니다. `tokenizer` 설정이
토큰 단위를 정합니다:

| `--config.tokenizer` | 토큰 | 어울리는 데이터 |
|---|---|---|
| `words` | 띄어쓰기로 나뉜 어절(유니코드 글자·숫자, NFKC 정규화) | 띄어쓰기가 있는 언어; 내 파일의 기본값 |
| `characters` | 글자(한글 음절) 하나하나 | 한국어, 중국어, 일본어; 작은 데이터 |
| `subwords` | 학습 텍스트로 만든 SentencePiece 조각 | 큰 데이터(NSMC 15만 리뷰 등) |

저장소에 들어 있는 `examples/reviews_ko.csv`(이 튜토리얼을 위해 쓴 짧은 리뷰 400개,
`document`와 `label` 열: 1 긍정, 0 부정)를 음절 단위로 학습합니다. 리뷰의 20%는 테스트용으로
떼어 둡니다. NSMC의 `ratings_train.txt`도 그대로 읽힙니다(README 참고)."""
new = [
nbformat.v4.new_code_cell("""ko_config = api.load_config(
    CELL, dataset="examples/reviews_ko.csv", text_field="document",
    tokenizer="characters", num_words=1_000, seq_len=48, batch_size=16,
    num_epochs=KO_EPOCHS)
ko_data = api.load_data(ko_config)
ko_words = ["<pad>", "<unk>"] + list(ko_data.vocabulary)
print("토크나이저:", ko_data.tokenizer.kind, "/ 어휘:", len(ko_data.vocabulary) + 2)
print("토큰:", ko_data.tokenizer("배우들 연기가 너무 좋았다"))
first = ko_data.train.tokens[0]
print("첫 리뷰:", "".join(ko_words[i] for i in first[first != 0]),
      "→", "긍정" if ko_data.train.labels[0] else "부정")"""),
nbformat.v4.new_code_cell("""ko_model = api.build_model(ko_config)
ko_feeds = api.plan(ko_config, ko_data)
ko_state = api.create_state(ko_config, ko_model, ko_feeds)
for epoch in range(ko_config.num_epochs):
    ko_state, train = api.train_epoch(ko_state, ko_feeds, epoch, progress=False)
    scores = api.evaluate(ko_state, ko_feeds)
    print(f"에폭 {epoch + 1}: 학습 정확도 {train['train_accuracy']:.3f}  "
          f"테스트 정확도 {scores['test_accuracy']:.3f}")"""),
nbformat.v4.new_markdown_cell("""직접 쓴 한국어 리뷰를 예측하고, 어떤 글자가 점수를 움직였는지 봅니다
(`text_rule`에 데이터의 토크나이저를 넘깁니다)."""),
nbformat.v4.new_code_cell("""ko_reviews = ["음악이 정말 아름답다. 다시 보고 싶은 영화",
              "스토리가 엉망이다. 시간 낭비였다"]
probabilities = api.predict_texts(ko_state, ko_config, ko_data.vocabulary, ko_reviews,
                                  text_rule=ko_data.tokenizer)
for text, p in zip(ko_reviews, probabilities):
    print(f"{p:.3f}  {'긍정' if p > 0.5 else '부정'}  {text}")
for e in api.explain_texts(ko_state, ko_config, ko_data.vocabulary, ko_reviews[1:],
                           text_rule=ko_data.tokenizer):
    print(explain.render(e))"""),
nbformat.v4.new_markdown_cell("""명령줄에서는 한 줄입니다 (NSMC처럼 큰 데이터는 `subwords`가 어울립니다):

```bash
flax-sentiment train --config lstm --config.dataset=examples/reviews_ko.csv \\
  --config.text_field=document --config.tokenizer=characters --config.seq_len=48 \\
  --config.num_words=1000 --config.batch_size=16 --config.num_epochs=8 --workdir runs/ko
flax-sentiment predict --workdir runs/ko --explain "배우들 연기가 너무 좋았다"
```"""),
]
nb.cells = cells + new
nb.metadata.setdefault("language_info", {})
nbformat.validate(nb)
nbformat.write(nb, HERE / "tutorial_ko.ipynb")
