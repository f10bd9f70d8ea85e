"""Speech tokenization, the stage notebook 01 teaches: audio -> frame features -> k-means units -> dedup.

`features` (log-mel or HuBERT frames), `kmeans` (fitting and assigning centroids), `units`
(dedup and the unit vocabulary a language model reads), `speech_tokenizer` (all three chained,
saved and loaded as one directory) and `corpus` (a whole corpus of speech into parquet shards of
units, resumably). Nothing is imported here: import the module you need.
"""
