"""Writes examples/reviews_ko.csv: 400 short Korean movie reviews composed
from hand-written sentences (label 1 positive, 0 negative), seeded."""
import csv
import pathlib
import random

POS = """정말 재밌게 봤어요
배우들 연기가 너무 좋았다
마지막 장면에서 눈물이 났어요
올해 본 영화 중에 최고
시간 가는 줄 모르고 봤다
음악이 정말 아름답다
두 번 봐도 좋을 영화
가족이랑 같이 보기 좋아요
연출이 깔끔하고 세련됐다
스토리가 탄탄해서 몰입했어요
감독의 다음 작품이 기대된다
웃음과 감동이 다 있다
영상미가 훌륭하다
주인공이 너무 매력적이에요
강력 추천합니다
기대 이상이었다
여운이 오래 남는 영화
완벽한 결말이었어요
극장에서 꼭 보세요
대사 하나하나가 좋았다
배우들의 호흡이 최고
잔잔하지만 따뜻한 영화
보는 내내 행복했어요
명작이라는 말이 아깝지 않다
ㅋㅋㅋ 진짜 웃겼어요
손에 땀을 쥐게 하는 전개
OST가 계속 생각난다
다시 보고 싶은 영화
10점 만점에 10점
친구들한테 다 추천했어요""".split("\n")
NEG = """너무 지루해서 졸았다
돈이 아까운 영화
연기가 너무 어색했어요
올해 본 영화 중에 최악
스토리가 엉망이다
중간에 나오고 싶었다
결말이 너무 허무해요
시간 낭비였다
기대했는데 실망했어요
억지 감동이 불편했다
대사가 유치하다
개연성이 하나도 없다
편집이 너무 산만해요
배우가 아깝다
두 시간이 너무 길었다
광고에 속았어요
다시는 안 볼 영화
웃기려고 했는데 하나도 안 웃김
뻔한 전개에 지쳤다
음악만 시끄럽다
보다가 잠들었어요
추천하지 않습니다
평점이 왜 높은지 모르겠다
캐릭터가 매력이 없다
ㅡㅡ 진짜 별로
1점도 아까움
내용이 너무 산으로 간다
연출이 촌스럽다
영화관에서 나가고 싶었어요
차라리 잠이나 잘걸""".split("\n")
OPEN = ["", "", "", "솔직히 ", "어제 봤는데 ", "주말에 봤는데 ", "친구랑 봤는데 ", "오랜만에 ", "기대 없이 봤는데 "]
END = ["", ".", "!", "..", "ㅎㅎ", "!!", "ㅠㅠ"]
rng = random.Random(2026)
rows = []
for i in range(400):
  label = i % 2
  own, other = (POS, NEG) if label else (NEG, POS)
  sentences = rng.sample(own, rng.choice([1, 2, 2, 3]))
  if rng.random() < 0.15:  # a mixed review: one sentence of the other side
    sentences.insert(rng.randrange(len(sentences) + 1), rng.choice(other))
  text = rng.choice(OPEN) + ". ".join(sentences) + rng.choice(END)
  rows.append((text, label))
with open(pathlib.Path(__file__).with_name("reviews_ko.csv"), "w", newline="",
          encoding="utf-8") as f:
  w = csv.writer(f); w.writerow(["document", "label"]); w.writerows(rows)
