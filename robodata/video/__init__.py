"""Video sources: folders or buckets of clips (web and human video, generated video such as Cosmos outputs).

Clips are probed, split at scene cuts, filtered by quality, hashed and deduplicated across the corpus
(:mod:`robodata.video.corpus`); the accepted shots become observation-only LeRobot episodes
(:mod:`robodata.video.episodes`) and take their place in a release mixed from every layer (:mod:`robodata.mix`).
"""
