"""Review files in Korean, Chinese and French that tests write: short
reviews composed from phrases that carry the label (two of the label's, one
neutral, now and then one of the other label's), seeded."""

import csv
import pathlib
import random

PHRASES = {
    "ko": {
        1: ["정말 재밌어요", "최고의 영화", "배우들 연기가 훌륭했다",
            "감동적이었어요", "또 보고 싶다", "강력 추천합니다",
            "음악이 아름다웠다", "시간 가는 줄 몰랐다", "웃기고 따뜻한 영화",
            "연출이 뛰어나다"],
        0: ["너무 지루했다", "최악의 영화", "연기가 어색했다", "돈이 아깝다",
            "시간 낭비", "추천하지 않습니다", "스토리가 엉망이다",
            "졸려서 잤다", "실망스러웠어요", "다시는 안 본다"],
        None: ["주인공이", "이 영화는", "어제 본", "친구랑 같이 본",
               "오랜만에 본", "기대했던", "감독의 새", "주말에 본"],
    },
    "zh": {
        1: ["这部电影很好看", "演员演得非常好", "剧情感人", "强烈推荐",
            "音乐很美", "值得再看一遍", "导演拍得精彩", "笑得很开心"],
        0: ["太无聊了", "浪费时间", "剧情很差", "演技尴尬", "不推荐",
            "看得想睡觉", "非常失望", "钱白花了"],
        None: ["昨天看的", "和朋友一起看", "周末去看了", "这个导演的新片"],
    },
    "fr": {
        1: ["très émouvant", "une œuvre magnifique", "acteurs géniaux",
            "je le recommande vivement", "réalisation réussie",
            "musique sublime", "un vrai chef-d'œuvre", "à voir absolument"],
        0: ["très médiocre", "à éviter", "scénario décevant",
            "acteurs ennuyeux", "une perte de temps", "réalisation ratée",
            "vraiment nul", "je me suis endormi"],
        None: ["ce film", "hier soir", "avec des amis", "le dernier film"],
    },
}
ENDINGS = {"ko": [".", "!", "ㅋㅋ", "..", ""], "zh": ["。", "！", ""],
           "fr": [".", " !", "..."]}


def reviews(language: str, num: int, seed: int) -> list[tuple[str, int]]:
  """`num` (text, label) pairs, labels alternating 0, 1."""
  rng = random.Random(seed)
  phrases = PHRASES[language]
  joiner = "" if language == "zh" else " "
  out = []
  for i in range(num):
    label = i % 2
    parts = [rng.choice(phrases[None])] + rng.sample(phrases[label], 2)
    if rng.random() < 0.2:
      parts.append(rng.choice(phrases[1 - label]))
    rng.shuffle(parts)
    out.append((joiner.join(parts) + rng.choice(ENDINGS[language]), label))
  return out


def write_csv(path: pathlib.Path, language: str, num: int, seed: int,
              text_field: str = "text") -> pathlib.Path:
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow([text_field, "label"])
    writer.writerows(reviews(language, num, seed))
  return path
